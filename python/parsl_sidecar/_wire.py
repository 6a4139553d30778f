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

__all__ = [
    "DELIMITER",
    "PROTOCOL_VERSION",
    "Envelope",
    "decode",
]

PROTOCOL_VERSION = 1
DELIMITER = b"<PSC|MSG>"
_LEN = struct.Struct(">I")


def _ext_hook(code: int, data: bytes) -> Any:
    # msgpackr (the sidecar's encoder) writes JavaScript `undefined` as fixext1 type 0.
    if code == 0 and data == b"\x00":
        return None
    return msgpack.ExtType(code, data)


def decode(data: bytes) -> Any:
    """Decode one MessagePack frame (strings as str, timestamps as datetime)."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False, timestamp=3, ext_hook=_ext_hook)


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
        header = packer.pack(
            {
                "v": version,
                "id": msg_id,
                "type": "request",
                "method": method,
                "ts": time.time_ns() // 1_000_000,
            }
        )
        body = packer.pack(params)
        return [DELIMITER, self.sign(header, body), header, body]

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
