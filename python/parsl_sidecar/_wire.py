"""The signed envelope of docs/protocol.md: frames, MessagePack header and body, HMAC-SHA256.

Internal to the client; kept small and allocation-light because every call goes through it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
from typing import Any

import msgpack
import zmq

__all__ = [
    "DELIMITER",
    "MAX_BATCH",
    "PROTOCOL_VERSION",
    "SIGNED_BYTES",
    "Envelope",
    "decode",
    "read_frames",
    "request_parts",
    "send_frames",
]

PROTOCOL_VERSION = 1
DELIMITER = b"<PSC|MSG>"
# the most messages one batch may carry (docs/protocol.md, Batches)
MAX_BATCH = 4096
# a message's bytes besides its header and body, as the sidecar counts them against its
# message_bytes limit (docs/protocol.md, Limits): the delimiter and the hex signature frames
SIGNED_BYTES = len(DELIMITER) + 64
_LEN = struct.Struct(">I")
_PAIR = b"\x92"  # MessagePack fixarray of 2: one [header, body] item of a batch
_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_RCVMORE = int(zmq.RCVMORE)
_backend_send = zmq.backend.Socket.send


def _ext_hook(code: int, data: bytes) -> Any:
    # msgpackr (the sidecar's encoder) writes JavaScript `undefined` as fixext1 type 0.
    if code == 0 and data == b"\x00":
        return None
    return msgpack.ExtType(code, data)


def decode(data: bytes) -> Any:
    """Decode one MessagePack frame (strings as str, timestamps as datetime)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=3, ext_hook=_ext_hook)


def request_parts(
    packer: msgpack.Packer, msg_id: str, method: str, params: Any, version: int = 1
) -> tuple[bytes, bytes]:
    """Pack a request's header and body (signed later, alone or in a batch)."""
    header = packer.pack(
        {
            "v": version,
            "id": msg_id,
            "type": "request",
            "method": method,
            "ts": time.time_ns() // 1_000_000,
        }
    )
    return header, packer.pack(params)


def send_frames(sock: zmq.Socket[bytes], frames: list[bytes], flags: int = 0) -> None:
    """Send one message (``flags`` apply to its first frame, e.g. ``NOBLOCK``).

    pyzmq's ``Socket.send`` is a Python wrapper (for DRAFT ``routing_id`` and ``group``) around
    the Cython send; calling the latter directly saves ~0.7 µs per frame on every message.
    A DEALER queues a whole message or none of it, so only the first frame can block.
    """
    last = len(frames) - 1
    _backend_send(sock, frames[0], flags | _SNDMORE if last else flags)
    for i in range(1, last):
        _backend_send(sock, frames[i], _SNDMORE)
    if last:
        _backend_send(sock, frames[last], 0)


def read_frames(sock: zmq.Socket[bytes], flags: int = 0) -> list[bytes] | None:
    """Receive one message of the four frames a sidecar sends; ``None`` when it is malformed.

    Raises ``zmq.Again`` when no message arrives (``flags``, or the socket's receive timeout,
    decide how long the first frame is waited for).

    Notes
    -----
    pyzmq's ``RCVMORE`` option lookup costs more than receiving a small frame, so the
    well-formed case learns where the message ends from the fourth frame's ``more`` flag (a
    Frame carries it) instead of asking after every frame. The rest of a message is always
    there once its first frame is (ZeroMQ delivers whole messages), so the later frames are
    received without waiting. A delimiter can start no frame but the first (signatures are
    hex, headers and bodies MessagePack), so a delimiter inside a message ends a short one
    there and starts the next: a malformed message never costs the one behind it.
    """
    recv = sock.recv
    frame = recv(flags)
    if frame != DELIMITER:
        _drain(sock)  # not ours: drop the rest of it
        return None
    frames = [frame]
    try:
        while True:
            if len(frames) < 3:
                frame = recv(_NOBLOCK)
            else:
                last = recv(_NOBLOCK, copy=False)  # a Frame: it carries the `more` flag
                frame = last.bytes
                if frame != DELIMITER:
                    break
            if frame == DELIMITER:
                frames = [frame]  # the one before was short; this one starts here
            else:
                frames.append(frame)
    except zmq.Again:
        return None  # a message shorter than four frames, and nothing behind it
    if last.more:  # longer than four frames
        _drain(sock)
        return None
    frames.append(frame)
    return frames


def _drain(sock: zmq.Socket[bytes]) -> None:
    while sock.getsockopt(_RCVMORE):
        sock.recv()


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class Envelope:
    """Signs, packs and checks messages for one key.

    Parameters
    ----------
    key : bytes
        The HMAC-SHA256 key from the connection file.

    Notes
    -----
    HMAC (RFC 2104) is computed from two SHA-256 states keyed once and copied per message:
    with OpenSSL 3, ``hmac.digest`` looks the digest up on every call and costs several times
    more, on every message in both directions.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def sign(self, header: bytes, body: bytes) -> bytes:
        """Return the lowercase hex HMAC-SHA256 of ``uint32_be(len(header)) + header + body``."""
        inner = self._inner.copy()
        inner.update(_LEN.pack(len(header)) + header + body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode("ascii")

    def request(
        self, packer: msgpack.Packer, msg_id: str, method: str, params: Any, version: int = 1
    ) -> list[bytes]:
        """Build the four frames of a request (delimiter, signature, header, body)."""
        header, body = request_parts(packer, msg_id, method, params, version)
        return self.frames(header, body)

    def frames(self, header: bytes, body: bytes) -> list[bytes]:
        """Sign packed header and body: the four frames of one message."""
        return [DELIMITER, self.sign(header, body), header, body]

    def batch(
        self, packer: msgpack.Packer, msg_id: str, items: list[tuple[bytes, bytes]]
    ) -> list[bytes]:
        """One signed message carrying packed ``(header, body)`` messages (MAX_BATCH at most)."""
        ts = time.time_ns() // 1_000_000
        header = packer.pack({"v": PROTOCOL_VERSION, "id": msg_id, "type": "batch", "ts": ts})
        body = packer.pack_array_header(len(items)) + b"".join([_PAIR + h + b for h, b in items])
        return self.frames(header, body)

    def open(self, frames: list[bytes]) -> tuple[dict[str, Any], Any] | None:
        """Check and decode received frames; ``None`` for anything unsigned or malformed."""
        if len(frames) != 4 or frames[0] != DELIMITER:
            return None
        sig, header, body = frames[1], frames[2], frames[3]
        if not hmac.compare_digest(sig, self.sign(header, body)):
            return None
        try:
            h = decode(header)
            b = decode(body)
        except Exception:  # anything undecodable is dropped, like unsigned traffic
            return None
        if not isinstance(h, dict):
            return None
        return h, b
