"""The client's background I/O thread: one DEALER socket carrying many calls at once.

``Client.call_async`` and ``Client.subscribe`` go through it. Callers pack in their own thread,
append to a deque and wake the thread through a pipe; the thread signs and sends, matches replies
to Futures by id, runs progress and event callbacks, expires deadlines and renews the event lease.
Calls queued together go as one batch when the sidecar speaks batches (docs/protocol.md): one
signature and one ZeroMQ message for all of them, and their replies come back the same way.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

import msgpack
import zmq

from ._wire import MAX_BATCH, SIGNED_BYTES, Envelope, read_frames, send_frames
from .connection import DEFAULT_MESSAGE_BYTES
from .errors import SidecarError, SidecarUnreachable, error_from_code
from .prompts import PromptHold

__all__ = ["Engine", "Pending", "reply_error"]

log = logging.getLogger("parsl_sidecar")

_NOBLOCK = int(zmq.NOBLOCK)
_BATCH_BYTES = 1 << 20
# what a batch message adds to its items: the delimiter and signature, its header (at most 128
# bytes with this client's ids of ~30 characters) and the array's own header
_BATCH_OVERHEAD = SIGNED_BYTES + 128 + 5


class Pending:
    """One call waiting for its reply."""

    __slots__ = (
        "body",
        "deadline",
        "future",
        "header",
        "held",
        "id",
        "method",
        "on_progress",
        "timeout",
    )

    def __init__(
        self,
        msg_id: str,
        header: bytes,
        body: bytes,
        future: Future[Any],
        method: str,
        timeout: float,
        on_progress: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.id = msg_id
        self.header = header
        self.body = body
        self.future = future
        self.method = method
        self.timeout = timeout
        self.deadline = math.inf if math.isinf(timeout) else time.monotonic() + timeout
        self.on_progress = on_progress
        # prompt-held seconds when the call started (see Engine.hold)
        self.held = 0.0


def reply_error(payload: Any) -> SidecarError:
    """Turn a reply's ``error`` map into the matching :class:`SidecarError` subclass."""
    if not isinstance(payload, dict):
        return SidecarError(f"Malformed error reply from the sidecar: {payload!r}", "INTERNAL")
    code = payload.get("code")
    data = payload.get("data")
    return error_from_code(
        code if isinstance(code, str) else "INTERNAL",
        str(payload.get("message", "")),
        data if isinstance(data, dict) else None,
    )


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:  # cancelled by its owner, or already settled
        pass


class Engine(threading.Thread):
    """The I/O thread of one client.

    Parameters
    ----------
    ctx : zmq.Context
        The client's context.
    endpoint : str
        Where the sidecar listens.
    envelope : Envelope
        Signs and checks messages.
    timeout_error : callable
        Builds the exception for a call that timed out: ``(method, timeout) -> SidecarError``.
    on_event : callable
        Receives each event message's header and body.
    renew : callable
        Returns a Pending that renews the event subscription (called every lease/3).
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoint: str,
        envelope: Envelope,
        timeout_error: Callable[[str, float], SidecarError],
        on_event: Callable[[dict[str, Any], Any], None],
        renew: Callable[[], Pending | None],
    ) -> None:
        super().__init__(name="parsl-sidecar-io", daemon=True)
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 100_000)
        self.sock.setsockopt(zmq.RCVHWM, 100_000)
        self.sock.connect(endpoint)
        self.packer = msgpack.Packer(use_bin_type=True)
        self._env = envelope
        self._timeout_error = timeout_error
        self._on_event = on_event
        self._renew = renew
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        self.outbox: deque[Pending] = deque()
        self._woken = False
        self.pending: dict[str, Pending] = {}
        self._deadlines: list[tuple[float, str]] = []
        self.renew_every = math.inf
        self._next_renew = math.inf
        self._pipe_lock = threading.Lock()
        self._pipe_open = True
        self.stopping = False
        self.finished = False
        self.on_exit: Callable[[], None] | None = None
        # set when the sidecar speaks batches: makes the id of each batch message
        self.batch_id: Callable[[], str] | None = None
        # the sidecar's limit on one message: no batch goes past it (each call alone is checked
        # before it is queued)
        self.message_bytes = DEFAULT_MESSAGE_BYTES
        # time while a prompt of the client is open does not count against call timeouts
        self.hold: PromptHold | None = None
        self.closed_error: Callable[[str], SidecarError] = lambda method: SidecarUnreachable(
            f"The client closed before {method} was answered"
        )

    def submit(self, p: Pending) -> None:
        """Queue a call from any thread."""
        self.outbox.append(p)
        if self.finished:
            self._fail_outbox()
        elif not self._woken and threading.current_thread() is not self:
            # (a call made from a callback on this thread is sent before it polls again)
            self._woken = True
            self.wake()

    def wake(self) -> None:
        """Make the thread look at its outbox and flags now."""
        # under the lock: once closed, the fd number may belong to someone else's file
        with self._pipe_lock, contextlib.suppress(OSError):  # full: it is awake anyway
            if self._pipe_open:
                os.write(self._wfd, b"\0")

    def set_lease(self, renew_every: float) -> None:
        """Renew the subscription every ``renew_every`` seconds (``inf`` stops renewing)."""
        self.renew_every = renew_every
        self._next_renew = time.monotonic() + renew_every
        self.wake()

    def stop(self) -> None:
        """Ask the thread to fail what is pending, close its socket and exit."""
        self.stopping = True
        self.wake()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        poller.register(self._rfd, zmq.POLLIN)
        try:
            while not self.stopping:
                for item, _ in poller.poll(self._poll_ms()):
                    if item == self._rfd:
                        self._drain_pipe()
                self._woken = False
                self._receive()
                now = time.monotonic()
                if self._deadlines and self._deadlines[0][0] <= now:
                    self._expire(now)
                if now >= self._next_renew:
                    self._next_renew = now + self.renew_every
                    p = self._renew()
                    if p is not None:
                        self.outbox.append(p)
                # last: this also sends what callbacks above called from this thread
                self._send_outbox()
        except Exception:  # a bug here must not hang every caller: fail them all below
            log.exception("parsl_sidecar I/O thread failed")
        finally:
            for p in self.pending.values():
                _settle(p.future, error=self.closed_error(p.method))
            self.pending.clear()
            self.sock.close(linger=0)
            with self._pipe_lock:
                self._pipe_open = False
                os.close(self._rfd)
                os.close(self._wfd)
            self.finished = True  # after this, submit() fails what it queues itself
            self._fail_outbox()
            if self.on_exit is not None:
                self.on_exit()

    def _poll_ms(self) -> int:
        if self.outbox:
            return 0
        nearest = min(self._next_renew, self._deadlines[0][0] if self._deadlines else math.inf)
        if math.isinf(nearest):
            return -1
        return max(0, math.ceil((nearest - time.monotonic()) * 1000))

    def _drain_pipe(self) -> None:
        try:
            while os.read(self._rfd, 4096):
                pass
        except BlockingIOError:
            pass

    def _fail_outbox(self) -> None:
        while True:
            try:
                p = self.outbox.popleft()
            except IndexError:
                return
            _settle(p.future, error=self.closed_error(p.method))

    def _send_outbox(self) -> None:
        outbox, pending = self.outbox, self.pending
        room = self.message_bytes - _BATCH_OVERHEAD
        while outbox:
            calls: list[Pending] = []
            size = 0
            # a batch ends at MAX_BATCH calls, once it holds 1 MiB (big params go nearly alone),
            # or before the call that would take it past the sidecar's limit (which then starts
            # the next one: a call that fits alone is sent alone)
            while outbox and len(calls) < MAX_BATCH and size < _BATCH_BYTES:
                p = outbox[0]
                if p.future.done():
                    outbox.popleft()
                    continue
                item = 1 + len(p.header) + len(p.body)  # a [header, body] pair
                if calls and size + item > room:
                    break
                outbox.popleft()
                calls.append(p)
                size += item
            if not calls:
                break
            hold = self.hold
            for p in calls:
                pending[p.id] = p
                if p.deadline != math.inf:
                    if hold is not None:
                        p.held = hold.held()
                    heapq.heappush(self._deadlines, (p.deadline, p.id))
            if len(calls) == 1 or self.batch_id is None:
                for p in calls:
                    self._send(self._env.frames(p.header, p.body), [p])
            else:
                items = [(p.header, p.body) for p in calls]
                self._send(self._env.batch(self.packer, self.batch_id(), items), calls)
        if len(self._deadlines) > 2 * len(pending) + 1024:
            # completed calls leave their deadlines behind; drop them in one pass
            self._deadlines = [
                (p.deadline, p.id) for p in pending.values() if p.deadline != math.inf
            ]
            heapq.heapify(self._deadlines)

    def _send(self, frames: list[bytes], calls: list[Pending]) -> None:
        try:
            send_frames(self.sock, frames, _NOBLOCK)
        except zmq.Again:
            for p in calls:
                del self.pending[p.id]
                _settle(
                    p.future,
                    error=SidecarUnreachable(
                        f"Cannot send {p.method}: 100000 messages are queued for a sidecar that "
                        "is not reading them; is it running?"
                    ),
                )

    def _receive(self) -> None:
        sock, open_ = self.sock, self._env.open
        while True:
            try:
                frames = read_frames(sock, _NOBLOCK)
            except zmq.Again:
                return
            msg = None if frames is None else open_(frames)
            if msg is None:
                continue
            header, body = msg
            if header.get("type") == "batch":
                if isinstance(body, list):
                    for item in body:
                        if isinstance(item, list) and len(item) == 2 and isinstance(item[0], dict):
                            self._dispatch(item[0], item[1])
                continue
            self._dispatch(header, body)

    def _dispatch(self, header: dict[str, Any], body: Any) -> None:
        pending = self.pending
        kind = header.get("type")
        if kind == "reply":
            p = pending.pop(header.get("reply_to"), None)  # type: ignore[arg-type]
            if p is None:
                return
            if isinstance(body, dict) and "error" in body:
                _settle(p.future, error=reply_error(body["error"]))
            else:
                _settle(p.future, body.get("result") if isinstance(body, dict) else None)
        elif kind == "progress":
            p = pending.get(header.get("reply_to"))  # type: ignore[arg-type]
            if p is not None and p.on_progress is not None:
                try:
                    p.on_progress(body)
                except Exception:
                    log.exception("progress callback for %s failed", p.method)
        elif kind == "event":
            self._on_event(header, body)

    def _expire(self, now: float) -> None:
        hold = self.hold
        later: list[tuple[float, str]] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, msg_id = heapq.heappop(self._deadlines)
            p = self.pending.get(msg_id)
            if p is None:
                continue
            if hold is not None and (hold.active or p.deadline + hold.held() - p.held > now):
                # a prompt is (or was) open: the deadline moves by the time it was open
                later.append((max(now + 0.25, p.deadline + hold.held() - p.held), msg_id))
                continue
            del self.pending[msg_id]
            _settle(p.future, error=self._timeout_error(p.method, p.timeout))
        for item in later:
            heapq.heappush(self._deadlines, item)
