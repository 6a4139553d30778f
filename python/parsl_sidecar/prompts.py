"""Questions of SSH servers, asked of the Python process whose call caused them.

A login node may ask for a one-time code after the key, a password, or the passphrase of an
encrypted key. The sidecar publishes each such question as an ``ssh.prompt`` event; a client
made with ``connect(prompt=...)`` (or ``parsl_config(prompt=...)``) subscribes to them, asks its
``prompt`` callable for the questions its own calls caused, and sends the answers back with
``ssh.prompt.answer``. Answers are never kept, logged or written (docs/ssh.md, "How prompts
reach you").
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "DEFAULT",
    "Prompt",
    "PromptCallable",
    "PromptHold",
    "answer_prompts",
    "default_prompt",
    "notebook_prompt",
    "terminal_prompt",
]

log = logging.getLogger("parsl_sidecar")


@dataclass(frozen=True)
class Prompt:
    """One line an SSH server asks to be answered.

    Attributes
    ----------
    host : str
        ``user@host:port`` as connected.
    text : str
        The server's prompt, e.g. ``"Verification code: "``.
    echo : bool
        Whether the answer may be shown while typed (the server says; codes and passwords: no).
    kind : str
        ``"code"`` (a one-time code or another keyboard-interactive question), ``"password"``,
        ``"passphrase"`` (of an encrypted key) or ``"host"`` (a question about the host).
    target : str
        The target as given (an ssh config alias, ``user@host``).
    name, instructions : str
        The server's name and instructions for the exchange (often empty).
    message : str or None
        On a retry: what the server said about the previous answer.
    attempt : int
        1 on the first try; higher after the server refused an answer.
    """

    host: str
    text: str
    echo: bool
    kind: str
    target: str = ""
    name: str = ""
    instructions: str = ""
    message: str | None = None
    attempt: int = 1


PromptCallable = Callable[[Prompt], "str | None"]
"""Answers a :class:`Prompt` with a string, or ``None`` to leave it to others."""


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Any = _Default()
"""``prompt=DEFAULT``: :func:`default_prompt` decides."""


def terminal_prompt(p: Prompt) -> str:
    """Ask on this terminal: ``getpass`` (no echo), or ``input`` when the server allows echo.

    The line is shown as ssh shows it, ``(user@host) Verification code:``, after a line naming
    the host and, on a retry, what the server said.
    """
    return _ask(p, input, getpass.getpass)


def _kernel() -> Any:
    """The ipykernel kernel this process runs as (a Jupyter notebook's), else ``None``."""
    if "ipykernel" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return getattr(get_ipython(), "kernel", None)


def notebook_prompt(kernel: Any) -> PromptCallable:
    """Ask in the notebook: the kernel's input request, shown under the running cell (a password
    field unless the server allows echo). From the client's prompt thread: the kernel's stdin
    channel is free while its main thread runs the cell that caused the prompt. A frontend that
    does not take input (``allow_stdin`` off, as nbclient) raises, and the prompt is left to the
    live page."""
    return lambda p: _ask(p, kernel.raw_input, kernel.getpass)


def _ask(p: Prompt, echoed: Callable[[str], str], hidden: Callable[[str], str]) -> str:
    sys.stderr.write(f"parsl-sidecar: {p.host} (target `{p.target}`) asks:\n")
    for line in (p.message, p.name, p.instructions):
        if line and line.strip():
            sys.stderr.write(f"{line.strip()}\n")
    sys.stderr.flush()
    who = p.host.rsplit(":", 1)[0] if ":" in p.host else p.host
    shown = f"({who}) {p.text}" if p.kind in ("code", "password") else p.text
    return echoed(shown) if p.echo else hidden(shown)


def default_prompt() -> PromptCallable | None:
    """The prompt used when none is given.

    ``getpass`` in a terminal (stdin is a TTY); the kernel's input request in a Jupyter
    notebook (:func:`notebook_prompt`); nothing otherwise, and nothing under
    ``parsl-sidecar run`` (``$PARSL_SIDECAR_JOB`` set): there the ``run`` command's own
    terminal answers.

    Returns
    -------
    callable or None
        :func:`terminal_prompt`, or ``None`` (this process does not answer; the live page,
        SSH_ASKPASS or another client may).
    """
    if os.environ.get("PARSL_SIDECAR_JOB"):
        return None
    kernel = _kernel()
    if kernel is not None:
        return notebook_prompt(kernel)  # Jupyter: stdin is not a TTY, the notebook asks
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        return None
    return terminal_prompt


def resolve_prompt(prompt: PromptCallable | Any | None) -> PromptCallable | None:
    """``DEFAULT`` -> :func:`default_prompt`; a callable or ``None`` as given."""
    if prompt is DEFAULT:
        return default_prompt()
    if prompt is not None and not callable(prompt):
        raise TypeError(
            f"Expected prompt to be a callable taking a Prompt and returning str, or None; "
            f"got {type(prompt).__name__}"
        )
    return prompt


class PromptHold:
    """Time while a prompt of this client is open, which call timeouts do not count.

    A user may take a minute to find a one-time code; the calls waiting on that connection
    should not time out meanwhile.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._since = 0.0
        self._total = 0.0

    def enter(self) -> None:
        """A prompt opened."""
        with self._lock:
            if self._open == 0:
                self._since = time.monotonic()
            self._open += 1

    def leave(self) -> None:
        """A prompt closed."""
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self._total += time.monotonic() - self._since

    @property
    def active(self) -> bool:
        """Whether a prompt is open now."""
        return self._open > 0

    def held(self) -> float:
        """Seconds spent with a prompt open so far (rises while one is open)."""
        with self._lock:
            extra = time.monotonic() - self._since if self._open else 0.0
            return self._total + extra


def _lines(data: dict[str, Any]) -> list[Prompt]:
    lines = data.get("prompts")
    if not isinstance(lines, list):
        return []
    message = data.get("message")
    return [
        Prompt(
            host=str(data.get("host", "")),
            text=str(line.get("text", "")),
            echo=bool(line.get("echo", False)),
            kind=str(data.get("kind", "code")),
            target=str(data.get("target", "")),
            name=str(data.get("name", "")),
            instructions=str(data.get("instructions", "")),
            message=message if isinstance(message, str) else None,
            attempt=int(data.get("attempt", 1)),
        )
        for line in lines
        if isinstance(line, dict)
    ]


def answer_prompts(client: Client, prompt: PromptCallable) -> Any:
    """Answer, with ``prompt``, the prompts ``client``'s own calls cause.

    Subscribes to ``ssh.prompt``; each prompt whose cause is one of this client's calls is asked
    in a thread of its own (one at a time), and answered with ``ssh.prompt.answer``. Returns the
    :class:`~parsl_sidecar.events.Subscription` (``close()`` it to stop).
    """
    lock = threading.Lock()
    seen: set[str] = set()

    def ask(data: dict[str, Any]) -> None:
        pid = str(data.get("id", ""))
        answers: list[str] = []
        client._hold.enter()
        try:
            with lock:
                for p in _lines(data):
                    a = prompt(p)
                    if a is None:
                        return  # left to others (the live page, SSH_ASKPASS)
                    if not isinstance(a, str):
                        log.warning(
                            "the prompt callable returned %s, not str: prompt %s left unanswered",
                            type(a).__name__,
                            pid,
                        )
                        return
                    answers.append(a)
            client.call_async("ssh.prompt.answer", id=pid, answers=answers).result(timeout=30)
        except Exception as e:  # answered elsewhere first, or the callable failed
            log.debug("prompt %s not answered from here: %s", pid, type(e).__name__)
        finally:
            answers.clear()
            client._hold.leave()

    def on_event(event: Any) -> None:
        if event.topic != "ssh.prompt":
            return
        data = event.data
        cause = data.get("cause") or {}
        if cause.get("session") != client._session:
            return
        if data.get("askpass") and prompt is terminal_prompt:
            return  # SSH_ASKPASS_REQUIRE=force/prefer: the user's askpass, not this terminal
        pid = str(data.get("id", ""))
        if pid in seen:
            return
        seen.add(pid)
        threading.Thread(target=ask, args=(data,), name="parsl-sidecar-prompt", daemon=True).start()

    return client.subscribe(["ssh.prompt"], on_event)
