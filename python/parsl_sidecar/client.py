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
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import msgpack
import zmq

from ._engine import Engine, Pending, reply_error
from ._wire import PROTOCOL_VERSION, Envelope
from .connection import ConnectionInfo, read_connection_file, resolve_connection_file
from .errors import SidecarError, SidecarTimeout, SidecarUnreachable, VersionMismatch

__all__ = ["Client", "Event", "Subscription", "connect"]

log = logging.getLogger("parsl_sidecar")

ProgressCallback = Callable[[dict[str, Any]], None]

# how often a waiting call looks whether its client was closed meanwhile
_SLICE_MS = 250
# plain ints: pyzmq's enum flags cost more than the send itself on the hot path
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_RCVTIMEO = int(zmq.RCVTIMEO)
_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork() -> None:
    for c in list(_CLIENTS):
        c._forked = True
        c._closed = True


os.register_at_fork(after_in_child=_after_fork)


@dataclass(frozen=True)
class Event:
    """One event from the sidecar (see ``Client.subscribe``).

    Attributes
    ----------
    topic : str
        Dotted topic, e.g. ``"transfer.progress"``.
    ts : float
        The sidecar's clock when it was emitted, milliseconds since the epoch.
    data : dict
        The event's fields.
    """

    topic: str
    ts: float
    data: dict[str, Any]


def _matches(prefixes: tuple[str, ...], topic: str) -> bool:
    return not prefixes or any(p in ("*", topic) or topic.startswith(p + ".") for p in prefixes)


class Subscription:
    """A callback receiving events; ``close()`` (or leaving the ``with`` block) ends it."""

    def __init__(self, client: Client, topics: tuple[str, ...], callback: Callable[[Event], None]):
        self.client = client
        self.topics = topics
        self.callback = callback
        self.closed = False

    def matches(self, topic: str) -> bool:
        """Whether an event of ``topic`` goes to this subscription."""
        return _matches(self.topics, topic)

    def close(self) -> None:
        """Stop receiving events; the sidecar is told when no subscription is left."""
        if not self.closed:
            self.closed = True
            self.client._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Slot:
    """A thread's own socket, and whether a call is using it right now."""

    __slots__ = ("busy", "rcvtimeo", "sock")

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self.busy = False
        self.rcvtimeo = -1


class _ThreadState:
    __slots__ = ("__weakref__", "packer", "slot")

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True)
        self.slot: _Slot | None = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connect(path: str | os.PathLike[str] | None = None, timeout: float | None = 30.0) -> Client:
    """Connect to a running sidecar.

    Parameters
    ----------
    path : str or PathLike, optional
        The connection file; default ``$PARSL_SIDECAR_CONNECTION_FILE``, else ``sidecar.json``
        in the runtime directory (see :func:`parsl_sidecar.connection.resolve_connection_file`).
    timeout : float or None, optional
        Default seconds a call waits for its reply (``None``: forever). Default 30.

    Returns
    -------
    Client
        A thread-safe client; close it (or use it as a context manager) when done.

    Raises
    ------
    SidecarUnreachable
        No connection file, a file others can read (``BAD_CONNECTION_FILE``: ``chmod 600``
        it), or a file left by a sidecar that is no longer running.
    VersionMismatch
        The sidecar speaks another protocol version.
    """
    file = resolve_connection_file(path)
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
    return Client(info, timeout=timeout)


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
        self._local = threading.local()
        self._slots: set[_Slot] = set()
        self._engine: Engine | None = None
        self._subs: list[Subscription] = []
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
            The sidecar's error (a subclass by code: ``InvalidParams``, ``UnknownMethod`` ...).
        SidecarTimeout
            No reply within ``timeout``.
        SidecarUnreachable
            The client is closed.
        """
        body = self._params(params, kwparams)
        wait = self.timeout if timeout is None else _check_timeout(timeout)
        state = self._state()
        with self._lock:
            if self._closed:
                raise self._closed_error(method)
            slot = state.slot if state.slot is not None else self._open_slot(state)
            slot.busy = True
        try:
            msg_id = f"{self._session}-{next(self._ids):x}"
            delimiter, signature, header, payload = self._request(
                state.packer, msg_id, method, body
            )
            send = slot.sock.send
            send(delimiter, _SNDMORE)
            send(signature, _SNDMORE)
            send(header, _SNDMORE)
            send(payload)
            return self._wait(slot, msg_id, method, wait, on_progress)
        finally:
            with self._lock:
                slot.busy = False
                if self._closed:
                    self._close_slot(slot)
                    self._maybe_term()

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
        """
        body = self._params(params, kwparams)
        wait = self.timeout if timeout is None else _check_timeout(timeout)
        engine = self._engine if self._engine is not None else self._start_engine()
        if self._closed:
            raise self._closed_error(method)
        msg_id = f"{self._session}-{next(self._ids):x}"
        frames = self._request(self._state().packer, msg_id, method, body)
        future: Future[Any] = Future()
        engine.submit(Pending(msg_id, frames, future, method, wait, on_progress))
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
        sub = Subscription(self, tuple(topics), callback)
        with self._lock:
            self._subs.append(sub)
        try:
            res = self.call_async(
                "sidecar.subscribe", topics=self._topics(), history=history
            ).result()
        except BaseException:
            with self._lock:
                self._subs.remove(sub)
            raise
        engine = self._engine
        if engine is not None:
            engine.set_lease(max(1.0, float(res["lease_ms"]) / 3000.0))
        for e in res.get("history", []):
            if sub.matches(e["topic"]):
                callback(Event(e["topic"], e["ts"], e.get("data") or {}))
        return sub

    def _topics(self) -> list[str]:
        with self._lock:
            if any(not s.topics for s in self._subs):
                return []
            return sorted({t for s in self._subs for t in s.topics})

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)
            left = bool(self._subs)
            engine = self._engine
        if self._closed or engine is None:
            return
        try:
            if left:
                self.call_async("sidecar.subscribe", topics=self._topics()).result()
            else:
                engine.set_lease(math.inf)
                self.call_async("sidecar.unsubscribe").result()
        except SidecarError as e:  # the lease runs out on its own
            log.debug("unsubscribing failed: %s", e)

    def _renew(self) -> Pending | None:
        engine = self._engine
        if engine is None or not self._subs:
            return None
        msg_id = f"{self._session}-{next(self._ids):x}"
        params = {"topics": self._topics()}
        frames = self._request(engine.packer, msg_id, "sidecar.subscribe", params)
        future: Future[Any] = Future()
        return Pending(msg_id, frames, future, "sidecar.subscribe", min(self.timeout, 60.0), None)

    def _on_event(self, header: dict[str, Any], body: Any) -> None:
        if not isinstance(body, dict):
            return
        topic = str(body.get("topic", header.get("topic", "")))
        data = body.get("data")
        event = Event(
            topic, body.get("ts", header.get("ts", 0)), data if isinstance(data, dict) else {}
        )
        for sub in list(self._subs):
            if sub.matches(topic):
                try:
                    sub.callback(event)
                except Exception:
                    log.exception("event callback for %s failed", topic)

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
            for slot in list(self._slots):
                if not slot.busy:
                    self._close_slot(slot)
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
    def _params(params: Mapping[str, Any] | None, kwparams: dict[str, Any]) -> Any:
        if params is None:
            return kwparams
        if not isinstance(params, Mapping):
            raise TypeError(f"Expected params to be a mapping, got {type(params).__name__}")
        return {**params, **kwparams} if kwparams else params

    def _request(self, packer: msgpack.Packer, msg_id: str, method: str, body: Any) -> list[bytes]:
        try:
            return self._envelope.request(packer, msg_id, method, body, self._version)
        except (TypeError, ValueError, OverflowError) as e:
            raise TypeError(f"Cannot encode the params of {method} as MessagePack: {e}") from e

    def _state(self) -> _ThreadState:
        try:
            state: _ThreadState = self._local.state
        except AttributeError:
            state = self._local.state = _ThreadState()
        return state

    def _open_slot(self, state: _ThreadState) -> _Slot:
        sock: zmq.Socket[bytes] = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.info.endpoint)
        slot = state.slot = _Slot(sock)
        self._slots.add(slot)
        # a thread that ends drops its state: close its socket then
        weakref.finalize(state, self._release, slot).atexit = False
        return slot

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            if not self._forked:
                self._close_slot(slot)
            self._maybe_term()

    def _close_slot(self, slot: _Slot) -> None:
        if slot in self._slots:
            self._slots.discard(slot)
            slot.sock.close(linger=0)

    def _maybe_term(self) -> None:
        engine_done = self._engine is None or self._engine.finished
        if self._closed and engine_done and not (self._termed or self._forked or self._slots):
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
                    self._on_event,
                    self._renew,
                )
                self._engine.closed_error = self._closed_error
                self._engine.on_exit = self._engine_exited
                self._engine.start()
            return self._engine

    def _wait(
        self,
        slot: _Slot,
        msg_id: str,
        method: str,
        timeout: float,
        on_progress: ProgressCallback | None,
    ) -> Any:
        sock, open_ = slot.sock, self._envelope.open
        recv, more = sock.recv, sock.getsockopt
        deadline = time.monotonic() + timeout
        while True:
            wait_ms = _SLICE_MS
            if timeout != math.inf:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout_error(method, timeout)
                wait_ms = min(_SLICE_MS, math.ceil(remaining * 1000))
            if slot.rcvtimeo != wait_ms:
                sock.setsockopt(_RCVTIMEO, wait_ms)
                slot.rcvtimeo = wait_ms
            try:
                frames = [recv()]
            except zmq.Again:
                if self._closed:
                    raise self._closed_error(method) from None
                continue
            while more(_RCVMORE):  # the rest of a multipart message is already here
                frames.append(recv())
            msg = open_(frames)
            if msg is None:
                continue
            header, body = msg
            if header.get("reply_to") != msg_id:
                continue  # a late reply to an earlier call that timed out
            kind = header.get("type")
            if kind == "reply":
                if isinstance(body, dict) and "error" in body:
                    raise reply_error(body["error"])
                return body.get("result") if isinstance(body, dict) else None
            if kind == "progress" and on_progress is not None:
                on_progress(body)

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
