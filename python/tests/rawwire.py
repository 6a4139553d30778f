"""A bare DEALER speaking the wire protocol by hand, for sending what a client never would."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import zmq

from parsl_sidecar._wire import DELIMITER, Envelope, decode
from parsl_sidecar.connection import ConnectionInfo


def request_frames(
    key: bytes, method: str, params: Any = None, *, version: int = 1, msg_id: str | None = None
) -> tuple[str, list[bytes]]:
    """A correctly signed request (or one signed with another key)."""
    msg_id = msg_id or f"raw{secrets.token_hex(4)}-0"
    frames = Envelope(key).request(
        msgpack.Packer(use_bin_type=True), msg_id, method, params or {}, version
    )
    return msg_id, frames


def signed_garbage(key: bytes, header: bytes, body: bytes) -> list[bytes]:
    """Frames whose signature is right but whose header/body are whatever was given."""
    return [DELIMITER, Envelope(key).sign(header, body), header, body]


@contextmanager
def raw_dealer(info: ConnectionInfo) -> Iterator[zmq.Socket[bytes]]:
    """A DEALER connected to the sidecar, closed (linger 0) afterwards."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(info.endpoint)
    try:
        yield sock
    finally:
        sock.close(linger=0)
        ctx.term()


def replies(sock: zmq.Socket[bytes], key: bytes, wait_s: float) -> list[tuple[dict[str, Any], Any]]:
    """Every verified message arriving within ``wait_s`` seconds."""
    out: list[tuple[dict[str, Any], Any]] = []
    deadline = time.monotonic() + wait_s
    env = Envelope(key)
    while (left := deadline - time.monotonic()) > 0:
        if not sock.poll(int(left * 1000) + 1):
            break
        msg = env.open(sock.recv_multipart())
        if msg is not None:
            out.append(msg)
    return out


def first_reply(
    sock: zmq.Socket[bytes], key: bytes, wait_s: float = 30
) -> tuple[dict[str, Any], Any]:
    """The first verified message, or an AssertionError after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    env = Envelope(key)
    while (left := deadline - time.monotonic()) > 0:
        if sock.poll(int(left * 1000) + 1):
            msg = env.open(sock.recv_multipart())
            if msg is not None:
                return msg
    raise AssertionError(f"no reply within {wait_s} s")


__all__ = ["decode", "first_reply", "raw_dealer", "replies", "request_frames", "signed_garbage"]
