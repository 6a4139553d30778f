"""A private sidecar for this Python process, started when none is running and none is named.

``connect()`` (and so ``parsl_config()``, the staging provider and the decorators) calls
:func:`resolve_or_start`: with no path given, no ``$PARSL_SIDECAR_CONNECTION_FILE`` and no live
sidecar in the default runtime directory, it starts ``parsl-sidecar serve`` in a runtime
directory of its own, owned by this process. The sidecar holds the read end of a pipe whose
write end only this process holds, and polls this pid: it stops, releasing every tunnel, relay
and worker block, when this process exits (atexit closes the pipe and waits) and also when it
is killed (the pipe ends). ``autostart=False`` or ``PARSL_SIDECAR_AUTOSTART=0`` refuses.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from parsl_sidecar_cli import node_flags

from .connection import (
    CONNECTION_ENV,
    default_runtime_dir,
    read_connection_file,
    resolve_connection_file,
)
from .errors import SidecarError, SidecarUnreachable

__all__ = [
    "AUTOSTART_ENV",
    "OwnedSidecar",
    "autostart_enabled",
    "owned_sidecar",
    "resolve_or_start",
    "sidecar_command",
]

AUTOSTART_ENV = "PARSL_SIDECAR_AUTOSTART"
_START_TIMEOUT = 30.0
_STOP_TIMEOUT = 60.0
_DIR = re.compile(r"^py-(\d+)-")


def sidecar_command(python: str | None = None) -> list[str]:
    """The command that runs ``parsl-sidecar``.

    An installed ``parsl-sidecar`` wins: the one beside this interpreter (``python``, default
    ``sys.executable``: a virtual environment's console script, found even when the environment
    is not activated, as in a Jupyter kernel), else the one on ``PATH``; else this checkout's
    ``dist/bin/parsl-sidecar.js`` through ``node``.

    Raises
    ------
    SidecarUnreachable
        None of them exists.
    """
    beside = Path(python or sys.executable).parent / "parsl-sidecar"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    on_path = shutil.which("parsl-sidecar")
    if on_path:
        return [on_path]
    js = Path(__file__).resolve().parents[2] / "dist" / "bin" / "parsl-sidecar.js"
    node = shutil.which("node")
    if js.is_file() and node:
        return [node, *node_flags(str(js)), str(js)]
    raise SidecarUnreachable(
        "Cannot start a sidecar: no `parsl-sidecar` command beside this Python or on PATH"
        + ("" if node or not js.is_file() else f", and no `node` to run {js}")
        + "; install parsl-sidecar (pip install parsl-sidecar, or npm i -g parsl-sidecar)",
        data={"autostart": True},
    )


def autostart_enabled(autostart: bool | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Whether a private sidecar may be started: ``autostart`` when given, else
    ``$PARSL_SIDECAR_AUTOSTART`` (``0``, ``false``, ``no``, ``off`` refuse; default yes)."""
    if autostart is not None:
        return bool(autostart)
    env = os.environ if env is None else env
    return env.get(AUTOSTART_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class OwnedSidecar:
    """A ``parsl-sidecar serve`` this process started and owns.

    Attributes
    ----------
    proc : subprocess.Popen
        The sidecar process (its own session: a Ctrl-C meant for Python does not reach it).
    runtime_dir : str
        Its private runtime directory (connection file, socket, ``sidecar.log``); removed when
        it stops.
    connection_file : str
        Where its connection file is.
    """

    def __init__(self, proc: subprocess.Popen[bytes], runtime_dir: str, pipe: int) -> None:
        self.proc = proc
        self.runtime_dir = runtime_dir
        self.connection_file = os.path.join(runtime_dir, "sidecar.json")
        self._pipe: int | None = pipe

    def __repr__(self) -> str:
        return f"<OwnedSidecar pid={self.proc.pid} {self.runtime_dir}>"

    def alive(self) -> bool:
        """Whether the sidecar process is still running."""
        return self.proc.poll() is None

    def stop(self, timeout: float = _STOP_TIMEOUT) -> int | None:
        """Close the owner's pipe (the sidecar tears everything down and exits) and wait.

        Returns the exit code, or ``None`` if it still ran after ``timeout`` (then it was sent
        SIGTERM and is left to finish on its own).
        """
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            code = None
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if code is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return code

    def _forget_in_child(self) -> None:
        # a forked child must not hold the pipe open, or the sidecar would outlive its owner
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None


_lock = threading.Lock()
_owned: OwnedSidecar | None = None
_registered = False


def owned_sidecar() -> OwnedSidecar | None:
    """The sidecar this process started, while it runs (else ``None``)."""
    with _lock:
        return _owned if _owned is not None and _owned.alive() else None


def _after_fork() -> None:
    global _owned
    if _owned is not None:
        _owned._forget_in_child()
    _owned = None


os.register_at_fork(after_in_child=_after_fork)


def _stop_at_exit() -> None:
    global _owned
    with _lock:
        owned, _owned = _owned, None
    if owned is not None and owned.alive():
        owned.stop()


def _sweep(base: str) -> None:
    """Remove the runtime directories that owners killed before they could remove them."""
    with contextlib.suppress(OSError):
        for name in os.listdir(base):
            m = _DIR.match(name)
            path = os.path.join(base, name)
            if not m or os.path.exists(os.path.join(path, "sidecar.json")):
                continue  # not ours, or its sidecar still runs
            try:
                os.kill(int(m.group(1)), 0)
            except ProcessLookupError:
                shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass


def _read_ready(proc: subprocess.Popen[bytes], err_path: str, cmd: list[str]) -> None:
    """Wait for ``serve --json``'s document on stdout: the sidecar listens then."""
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + _START_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                proc.wait()
                raise SidecarUnreachable(
                    f"The sidecar started for this process ({' '.join(cmd)}) did not answer "
                    f"within {_START_TIMEOUT:.0f} s; see {err_path}",
                    data={"autostart": True},
                )
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                proc.wait()
                with open(err_path, errors="replace") as f:
                    why = f.read().strip()
                raise SidecarUnreachable(
                    f"The sidecar started for this process exited with {proc.returncode} at "
                    f"start ({' '.join(cmd)}): {why or 'no message'}",
                    data={"autostart": True},
                )
            out += chunk
            with contextlib.suppress(ValueError):
                json.loads(out)
                return


def start() -> OwnedSidecar:
    """Start a sidecar owned by this process (or return the one already started)."""
    global _owned, _registered
    with _lock:
        if _owned is not None and _owned.alive():
            return _owned
        cmd = sidecar_command()
        base = default_runtime_dir()
        os.makedirs(base, mode=0o700, exist_ok=True)
        _sweep(base)
        runtime = tempfile.mkdtemp(prefix=f"py-{os.getpid()}-", dir=base)
        err_path = os.path.join(runtime, "serve.stderr")
        args = [
            *cmd,
            "serve",
            "--runtime-dir",
            runtime,
            "--owner-pid",
            str(os.getpid()),
            "--owner-stdin",
            "--json",
            "--log-level",
            "warn",
        ]
        r, w = os.pipe()  # both ends non-inheritable: only the sidecar gets r, as its stdin
        try:
            with open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    args, stdin=r, stdout=subprocess.PIPE, stderr=err, start_new_session=True
                )
        except BaseException:
            os.close(w)
            shutil.rmtree(runtime, ignore_errors=True)
            raise
        finally:
            os.close(r)
        owned = OwnedSidecar(proc, runtime, w)
        try:
            _read_ready(proc, err_path, cmd)
        except BaseException:
            owned.stop(timeout=5)
            shutil.rmtree(runtime, ignore_errors=True)
            raise
        if not _registered:
            atexit.register(_stop_at_exit)
            _registered = True
        _owned = owned
        return owned


def resolve_or_start(
    path: str | os.PathLike[str] | None = None, autostart: bool | None = None
) -> str:
    """The connection file ``connect()`` uses, starting a private sidecar when none runs.

    A named sidecar (``path``, ``$PARSL_SIDECAR_CONNECTION_FILE``) is used as it is. Otherwise:
    the sidecar this process started, else a live one in the default runtime directory
    (``serve --detach``), else a new private one when :func:`autostart_enabled`.

    Raises
    ------
    SidecarUnreachable
        None runs and autostart is off (the message says how to start one), or the sidecar
        could not be started.
    """
    if path is not None or os.environ.get(CONNECTION_ENV):
        return resolve_connection_file(path)
    owned = owned_sidecar()
    if owned is not None:
        return owned.connection_file
    file = resolve_connection_file(None)
    try:
        info = read_connection_file(file)
    except SidecarError as e:
        if e.code != "UNREACHABLE":
            return file  # a bad file: connect() says what is wrong with it
    else:
        try:
            os.kill(info.pid, 0)
            return file
        except PermissionError:
            return file
        except OSError:
            pass  # a stale file: its sidecar is gone
    if not autostart_enabled(autostart):
        raise SidecarUnreachable(
            f"No sidecar is running (none at {file}) and autostart is off "
            f"(autostart=False or {AUTOSTART_ENV}=0): start one with "
            "`parsl-sidecar serve --detach`, run your workflow under "
            "`parsl-sidecar run -- python ...`, or allow autostart",
            data={"path": file, "autostart": False},
        )
    return start().connection_file
