"""Each thread's own DEALER socket for blocking calls, closed when the thread ends.

A blocking ``Client.call`` sends and waits on the socket of the calling thread: no call waits
for another and no thread hop is needed. Replies meant for an earlier call of the same thread
(one that timed out) are recognized by id and discarded.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from ._wire import Envelope, read_frames, send_frames
from .prompts import PromptHold

__all__ = ["Slot", "ThreadSockets", "ThreadState"]

# plain ints: pyzmq's enum flags cost more than the send itself on the hot path
_RCVTIMEO = int(zmq.RCVTIMEO)
# how often a waiting call looks whether its client was closed meanwhile
_SLICE_MS = 250


class Slot:
    """A thread's own socket, and whether a call is using it right now."""

    __slots__ = ("busy", "rcvtimeo", "sock")

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self.sock = sock
        self.busy = False
        self.rcvtimeo = -1

    def send(self, frames: list[bytes]) -> None:
        """Send one message of four frames."""
        send_frames(self.sock, frames)

    def receive(self, envelope: Envelope, wait_ms: int) -> tuple[dict[str, Any], Any] | None:
        """The next verified message; ``None`` for a bad one; ``zmq.Again`` after ``wait_ms``."""
        sock = self.sock
        if self.rcvtimeo != wait_ms:
            sock.setsockopt(_RCVTIMEO, wait_ms)
            self.rcvtimeo = wait_ms
        frames = read_frames(sock)
        return None if frames is None else envelope.open(frames)

    def wait_reply(
        self,
        envelope: Envelope,
        msg_id: str,
        timeout: float,
        on_progress: Callable[[dict[str, Any]], None] | None,
        closed: Callable[[], bool],
        hold: PromptHold | None = None,
    ) -> tuple[dict[str, Any], Any] | None:
        """Wait for the reply to ``msg_id``, passing progress on.

        Returns the reply's header and body; ``None`` on timeout or when ``closed()`` turns true
        (looked at every quarter second). Time while ``hold`` is active (a prompt of this client
        is open) does not count.
        """
        deadline = time.monotonic() + timeout
        held = hold.held() if hold is not None else 0.0
        while True:
            wait_ms = _SLICE_MS
            if timeout != math.inf:
                extra = hold.held() - held if hold is not None else 0.0
                remaining = deadline + extra - time.monotonic()
                if remaining <= 0 and not (hold is not None and hold.active):
                    return None
                wait_ms = max(1, min(_SLICE_MS, math.ceil(remaining * 1000)))
            try:
                msg = self.receive(envelope, wait_ms)
            except zmq.Again:
                if closed():
                    return None
                continue
            if msg is None or msg[0].get("reply_to") != msg_id:
                continue  # unsigned, or a late reply to an earlier call that timed out
            kind = msg[0].get("type")
            if kind == "reply":
                return msg
            if kind == "progress" and on_progress is not None:
                on_progress(msg[1])


class ThreadState:
    """What one thread keeps per client: its MessagePack packer and (once used) its socket."""

    __slots__ = ("__weakref__", "packer", "slot")

    def __init__(self) -> None:
        self.packer = msgpack.Packer(use_bin_type=True)
        self.slot: Slot | None = None


class ThreadSockets:
    """The per-thread sockets of one client.

    Parameters
    ----------
    ctx : zmq.Context
        The client's context.
    endpoint : str
        Where the sidecar listens.
    on_thread_end : callable
        Called with a thread's slot after the thread ended (close it there, under the lock).
    """

    def __init__(
        self, ctx: zmq.Context[Any], endpoint: str, on_thread_end: Callable[[Slot], None]
    ) -> None:
        self._ctx = ctx
        self._endpoint = endpoint
        self._on_thread_end = on_thread_end
        self._local = threading.local()
        self.slots: set[Slot] = set()

    def state(self) -> ThreadState:
        """This thread's state, created on first use."""
        try:
            state: ThreadState = self._local.state
        except AttributeError:
            state = self._local.state = ThreadState()
        return state

    def open(self, state: ThreadState) -> Slot:
        """Give this thread its socket (call with the client's lock held)."""
        sock: zmq.Socket[bytes] = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self._endpoint)
        slot = state.slot = Slot(sock)
        self.slots.add(slot)
        # a thread that ends drops its state: close its socket then
        weakref.finalize(state, self._on_thread_end, slot).atexit = False
        return slot

    def close(self, slot: Slot) -> None:
        """Close one socket (call with the client's lock held)."""
        if slot in self.slots:
            self.slots.discard(slot)
            slot.sock.close(linger=0)

    def close_idle(self) -> None:
        """Close every socket no call is using (call with the client's lock held)."""
        for slot in list(self.slots):
            if not slot.busy:
                self.close(slot)
