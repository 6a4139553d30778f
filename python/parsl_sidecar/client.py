"""The RPC client: the one transport between Python and the sidecar (docs/protocol.md).

``connect()`` reads the connection file and returns a thread-safe :class:`Client`. A blocking
``call`` uses a DEALER socket of the calling thread's own, so no call waits for another and a
single-threaded caller never hops threads; ``call_async`` and ``subscribe`` go through one
background I/O thread with many calls in flight. Every message is signed with HMAC-SHA256.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import secrets
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import Any

import msgpack
import zmq

from ._engine import Engine, Pending, reply_error
from ._slots import Slot, ThreadSockets
from ._wire import PROTOCOL_VERSION, SIGNED_BYTES, Envelope, request_parts
from .autostart import resolve_or_start
from .connection import ConnectionInfo, Limits, read_connection_file
from .errors import SidecarError, SidecarTimeout, SidecarUnreachable, VersionMismatch
from .events import Event, Subscription, Subscriptions
from .prompts import DEFAULT, PromptCallable, PromptHold, answer_prompts, resolve_prompt

__all__ = ["Client", "Event", "Subscription", "connect"]

log = logging.getLogger("parsl_sidecar")

ProgressCallback = Callable[[dict[str, Any]], None]

_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork() -> None:
    for c in list(_CLIENTS):
        c._forked = True
        c._closed = True


os.register_at_fork(after_in_child=_after_fork)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connect(
    path: str | os.PathLike[str] | None = None,
    timeout: float | None = 30.0,
    *,
    prompt: PromptCallable | None = DEFAULT,
    autostart: bool | None = None,
) -> Client:
    """Connect to a running sidecar, or to one started for this process.

    Parameters
    ----------
    path : str or PathLike, optional
        The connection file; default ``$PARSL_SIDECAR_CONNECTION_FILE``, else ``sidecar.json``
        in the runtime directory (see :func:`parsl_sidecar.connection.resolve_connection_file`).
    timeout : float or None, optional
        Default seconds a call waits for its reply (``None``: forever). Default 30.
    prompt : callable or None, optional
        Answers what SSH servers ask because of this client's calls (a one-time code, a
        password, a key's passphrase): called with a :class:`~parsl_sidecar.Prompt`, returns
        the answer (``None``: leave it to others). Default: ``getpass`` when stdin is a
        terminal, else nothing (see :func:`parsl_sidecar.prompts.default_prompt`). ``None``:
        this client answers nothing. While a prompt is open, call timeouts stand still.
    autostart : bool, optional
        With no sidecar named (no ``path``, no ``$PARSL_SIDECAR_CONNECTION_FILE``) and none
        running in the default runtime directory, start one owned by this process (stopped with
        everything it holds when the process exits or is killed; later calls use it). Default
        ``$PARSL_SIDECAR_AUTOSTART`` (``0`` refuses), else True.

    Returns
    -------
    Client
        A thread-safe client; close it (or use it as a context manager) when done.

    Raises
    ------
    SidecarUnreachable
        No sidecar and autostart off (or it could not start), a named file that is missing or
        left by a sidecar no longer running, or a file others can read
        (``BAD_CONNECTION_FILE``: ``chmod 600`` it).
    VersionMismatch
        The sidecar speaks another protocol version.
    """
    file = resolve_or_start(path, autostart)
    info = read_connection_file(file)
    if info.protocol_version != PROTOCOL_VERSION:
        raise VersionMismatch(
            f"The sidecar at {file} speaks protocol {info.protocol_version}; this client "
            f"speaks {PROTOCOL_VERSION}. Use parsl_sidecar and parsl-sidecar of the same release.",
            data={"got": info.protocol_version, "supported": [PROTOCOL_VERSION]},
        )
    if not _pid_alive(info.pid):
        raise SidecarUnreachable(
            f"The connection file {file} is stale: its sidecar (pid {info.pid}) is not running; "
            "start one with `parsl-sidecar serve --detach`",
            data={"path": file, "pid": info.pid},
        )
    client = Client(info, timeout=timeout)
    answer = resolve_prompt(prompt)
    if answer is not None:
        try:
            client.answer_prompts(answer)
        except BaseException:
            client.close()
            raise
    return client


_ENV_MESSAGE = "PARSL_SIDECAR_RPC_MAX_MESSAGE"
_ENV_PENDING = "PARSL_SIDECAR_RPC_MAX_PENDING"


def _room_for(n: int) -> int:
    """The least power of two of at least ``n`` bytes (and 1 KiB): a limit with room to spare."""
    return 1 << (max(n, 1024) - 1).bit_length()


def _size_setting(n: int) -> str:
    """A power of two of at least 1 KiB as a value of the limit variables: ``128KiB``."""
    return f"{n // 1024}KiB" if n < 1024**2 else f"{n // 1024**2}MiB"


def _message_too_large(method: str, size: int, limits: Limits) -> SidecarError:
    """The error for a request over the sidecar's ``message_bytes`` (worded as in TypeScript)."""
    # serve refuses a message limit over the pending budget, so raising one may need both
    want = _room_for(size)
    pending = f" {_ENV_PENDING}={_size_setting(2 * want)}" if want > limits.pending_bytes else ""
    return SidecarError(
        f"Cannot send {method}: its request is {size} bytes signed, over the sidecar's limit of "
        f"{limits.message_bytes} bytes per message (message_bytes), past which it closes the "
        "connection. Send less per call (split the work into several calls), or start the "
        f"sidecar with a larger limit: `{_ENV_MESSAGE}={_size_setting(want)}{pending} "
        "parsl-sidecar serve --detach`",
        "RPC_MESSAGE_TOO_LARGE",
        {"method": method, "size": size, "limit": limits.message_bytes, "variable": _ENV_MESSAGE},
    )


def _check_timeout(timeout: float | None) -> float:
    if timeout is None:
        return math.inf
    if not timeout > 0:
        raise ValueError(
            f"Expected timeout to be a positive number of seconds or None, got {timeout!r}"
        )
    return float(timeout)


class Client:
    """A thread-safe connection to one sidecar.

    Parameters
    ----------
    info : ConnectionInfo
        Endpoint and key, from :func:`parsl_sidecar.connection.read_connection_file`.
    timeout : float or None, optional
        Default seconds a call waits for its reply (``None``: forever). Default 30.

    Notes
    -----
    Use :func:`connect` rather than this constructor. Callbacks (``on_progress`` of
    ``call_async``, events, Future callbacks) run on the client's I/O thread: keep them short.
    A client does not survive ``fork()``: connect again in the child.
    """

    def __init__(self, info: ConnectionInfo, timeout: float | None = 30.0) -> None:
        self.info = info
        self.timeout = _check_timeout(timeout)
        self._envelope = Envelope(info.key)
        self._session = secrets.token_hex(6)
        self._ids = itertools.count()
        self._version = PROTOCOL_VERSION
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._lock = threading.RLock()
        self._sockets = ThreadSockets(self._ctx, info.endpoint, self._thread_ended)
        self._engine: Engine | None = None
        self._subs = Subscriptions()
        self._hold = PromptHold()
        self._closed = False
        self._forked = False
        self._termed = False
        _CLIENTS.add(self)

    @property
    def endpoint(self) -> str:
        """The sidecar's ZeroMQ endpoint."""
        return self.info.endpoint

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<parsl_sidecar.Client {self.info.endpoint} pid={self.info.pid} {state}>"

    # --- calls -------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        **kwparams: Any,
    ) -> Any:
        """Call a method and wait for its result.

        Parameters
        ----------
        method : str
            The method, e.g. ``"sidecar.ping"`` (``sidecar.describe`` lists them).
        params : Mapping, optional
            Params as a mapping (needed for a param named ``timeout`` or ``on_progress``).
        timeout : float, optional
            Seconds to wait for the reply; default the client's; ``math.inf`` waits forever.
        on_progress : callable, optional
            Called in this thread with each progress message's map while the call runs.
        **kwparams
            Params as keywords, merged over ``params``.

        Returns
        -------
        Any
            The method's result.

        Raises
        ------
        SidecarError
            The sidecar's error (a subclass by code: ``InvalidParams``, ``UnknownMethod`` ...);
            ``RPC_MESSAGE_TOO_LARGE`` at once, nothing sent, when the request is larger than
            the sidecar's limit on a message (``info.limits.message_bytes``).
        SidecarTimeout
            No reply within ``timeout``.
        SidecarUnreachable
            The client is closed.
        """
        body = self._params(method, params, kwparams)
        wait = self.timeout if timeout is None else _check_timeout(timeout)
        state = self._sockets.state()
        with self._lock:
            if self._closed:
                raise self._closed_error(method)
            slot = state.slot if state.slot is not None else self._sockets.open(state)
            slot.busy = True
        try:
            msg_id = self._next_id()
            slot.send(self._request(state.packer, msg_id, method, body))
            msg = slot.wait_reply(
                self._envelope, msg_id, wait, on_progress, self._is_closed, self._hold
            )
        finally:
            with self._lock:
                slot.busy = False
                if self._closed:
                    self._sockets.close(slot)
                    self._maybe_term()
        if msg is None:
            if self._closed:
                raise self._closed_error(method)
            raise self._timeout_error(method, wait)
        body = msg[1]
        if isinstance(body, dict) and "error" in body:
            raise reply_error(body["error"])
        return body.get("result") if isinstance(body, dict) else None

    def call_async(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        /,
        *,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
        **kwparams: Any,
    ) -> Future[Any]:
        """Start a call and return at once; many can be in flight.

        Parameters are those of :meth:`call`; ``on_progress`` runs on the I/O thread.

        Returns
        -------
        concurrent.futures.Future
            Resolves to the result, or fails with the :class:`SidecarError` of :meth:`call`.

        Raises
        ------
        SidecarError
            ``RPC_MESSAGE_TOO_LARGE``, nothing sent, when the request is larger than the
            sidecar's limit on a message (``info.limits.message_bytes``).
        """
        body = self._params(method, params, kwparams)
        wait = self.timeout if timeout is None else _check_timeout(timeout)
        engine = self._engine if self._engine is not None else self._start_engine()
        if self._closed:
            raise self._closed_error(method)
        msg_id = self._next_id()
        header, packed = self._request_parts(self._sockets.state().packer, msg_id, method, body)
        future: Future[Any] = Future()
        engine.submit(Pending(msg_id, header, packed, future, method, wait, on_progress))
        return future

    # --- events ------------------------------------------------------------------------------

    def subscribe(
        self, topics: Iterable[str], callback: Callable[[Event], None], *, history: bool = False
    ) -> Subscription:
        """Receive events whose topic equals or starts with ``prefix.`` for a prefix in ``topics``.

        Parameters
        ----------
        topics : iterable of str
            Topic prefixes, e.g. ``["transfer", "job.state"]``; empty for every event.
        callback : callable
            Called on the I/O thread with each :class:`Event`.
        history : bool, optional
            Also deliver the recent events the sidecar keeps (before this call returns).

        Returns
        -------
        Subscription
            ``close()`` it to stop; the lease is renewed in the background meanwhile.
        """
        sub = Subscription(tuple(topics), callback, self._unsubscribe)
        self._subs.add(sub)
        try:
            res = self.call_async(
                "sidecar.subscribe", topics=self._subs.topics(), history=history
            ).result()
        except BaseException:
            self._subs.remove(sub)
            raise
        engine = self._engine
        if engine is not None:
            engine.set_lease(max(1.0, float(res["lease_ms"]) / 3000.0))
        for e in res.get("history", []):
            if sub.matches(e["topic"]):
                callback(Event(e["topic"], e["ts"], e.get("data") or {}))
        return sub

    def answer_prompts(self, prompt: PromptCallable) -> Subscription:
        """Answer with ``prompt`` what SSH servers ask because of this client's calls.

        ``connect(prompt=...)`` calls this; call it yourself for a client made otherwise.

        Parameters
        ----------
        prompt : callable
            Called (in a thread of its own, one prompt at a time) with each
            :class:`~parsl_sidecar.Prompt` line; returns the answer, or ``None`` to leave it.

        Returns
        -------
        Subscription
            ``close()`` it to stop answering.
        """
        sub: Subscription = answer_prompts(self, prompt)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        left = self._subs.remove(sub)
        engine = self._engine
        if self._closed or engine is None:
            return
        try:
            if left:
                self.call_async("sidecar.subscribe", topics=self._subs.topics()).result()
            else:
                engine.set_lease(math.inf)
                self.call_async("sidecar.unsubscribe").result()
        except SidecarError as e:  # the lease runs out on its own
            log.debug("unsubscribing failed: %s", e)

    def _renew(self) -> Pending | None:
        engine = self._engine
        if engine is None or not self._subs:
            return None
        msg_id = self._next_id()
        params = {"topics": self._subs.topics()}
        header, body = self._request_parts(engine.packer, msg_id, "sidecar.subscribe", params)
        future: Future[Any] = Future()
        wait = min(self.timeout, 60.0)
        return Pending(msg_id, header, body, future, "sidecar.subscribe", wait, None)

    # --- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close every socket; pending calls fail with :class:`SidecarUnreachable`.

        Idempotent. A blocking call running in another thread fails within a quarter second.
        """
        with self._lock:
            if self._closed and not self._forked:
                if self._engine is None or self._engine.finished:
                    self._maybe_term()
                return
            self._closed = True
            engine = self._engine
        if self._forked:
            return  # the parent's sockets are not ours to touch
        if engine is not None:
            engine.stop()
            if threading.current_thread() is not engine:
                engine.join(5.0)
        with self._lock:
            self._sockets.close_idle()
            self._maybe_term()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------------

    @staticmethod
    def _params(method: str, params: Mapping[str, Any] | None, kwparams: dict[str, Any]) -> Any:
        if not isinstance(method, str) or not method:
            raise TypeError(
                f"Expected method to be a method name such as 'sidecar.ping', got {method!r}"
            )
        if params is None:
            return kwparams
        if not isinstance(params, Mapping):
            raise TypeError(f"Expected params to be a mapping, got {type(params).__name__}")
        return {**params, **kwparams} if kwparams else params

    def _request(self, packer: msgpack.Packer, msg_id: str, method: str, body: Any) -> list[bytes]:
        return self._envelope.frames(*self._request_parts(packer, msg_id, method, body))

    def _request_parts(
        self, packer: msgpack.Packer, msg_id: str, method: str, body: Any
    ) -> tuple[bytes, bytes]:
        try:
            header, packed = request_parts(packer, msg_id, method, body, self._version)
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError(f"Cannot encode the params of {method} as MessagePack: {e}") from e
        size = SIGNED_BYTES + len(header) + len(packed)
        if size > self.info.limits.message_bytes:
            # the sidecar would close the connection on it, and the call wait for nothing
            raise _message_too_large(method, size, self.info.limits)
        return header, packed

    def _next_id(self) -> str:
        """A message id unique to this client: its session and a counter (calls and batches)."""
        return f"{self._session}-{next(self._ids):x}"

    def _is_closed(self) -> bool:
        return self._closed

    def _thread_ended(self, slot: Slot) -> None:
        with self._lock:
            if not self._forked:
                self._sockets.close(slot)
            self._maybe_term()

    def _maybe_term(self) -> None:
        engine_done = self._engine is None or self._engine.finished
        idle = not self._sockets.slots
        if self._closed and engine_done and idle and not (self._termed or self._forked):
            self._termed = True
            self._ctx.term()

    def _engine_exited(self) -> None:
        with self._lock:
            self._maybe_term()

    def _start_engine(self) -> Engine:
        with self._lock:
            if self._closed:
                raise self._closed_error("the call")
            if self._engine is None:
                self._engine = Engine(
                    self._ctx,
                    self.info.endpoint,
                    self._envelope,
                    self._timeout_error,
                    self._subs.dispatch,
                    self._renew,
                )
                self._engine.closed_error = self._closed_error
                self._engine.message_bytes = self.info.limits.message_bytes
                self._engine.hold = self._hold
                self._engine.on_exit = self._engine_exited
                if "batch" in self.info.features:
                    self._engine.batch_id = self._next_id
                self._engine.start()
            return self._engine

    def _timeout_error(self, method: str, timeout: float) -> SidecarError:
        where = f" (its log: {self.info.log_file})" if self.info.log_file else ""
        return SidecarTimeout(
            f"No reply to {method} within {timeout:g} s from the sidecar at "
            f"{self.info.endpoint} (pid {self.info.pid}); is it running? "
            f"Check `parsl-sidecar status`{where}.",
            data={"method": method, "timeout_s": timeout, "endpoint": self.info.endpoint},
        )

    def _closed_error(self, method: str) -> SidecarError:
        if self._forked:
            return SidecarUnreachable(
                "This client was created before a fork(); call parsl_sidecar.connect() again "
                "in this process"
            )
        return SidecarUnreachable(f"The client is closed; {method} was not answered")
