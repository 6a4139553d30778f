"""The envelope on the Python side: signature over exact bytes, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq

from parsl_sidecar import Client
from parsl_sidecar._wire import DELIMITER, Envelope, decode, read_frames, send_frames
from parsl_sidecar.connection import ConnectionInfo

KEY = bytes(range(32))


def test_signature_is_hmac_sha256_of_length_header_body() -> None:
    header, body = b"\x81\xa1v\x01", b"\x80"
    expected = hmac.new(KEY, struct.pack(">I", len(header)) + header + body, hashlib.sha256)
    assert Envelope(KEY).sign(header, body) == expected.hexdigest().encode()


def test_request_frames_open_and_tampering_is_rejected() -> None:
    env = Envelope(KEY)
    frames = env.request(msgpack.Packer(use_bin_type=True), "s-1", "sidecar.ping", {"a": 1})
    assert frames[0] == DELIMITER and len(frames[1]) == 64
    opened = env.open(frames)
    assert opened is not None
    header, body = opened
    assert header["v"] == 1 and header["id"] == "s-1" and header["method"] == "sidecar.ping"
    assert isinstance(header["ts"], int) and body == {"a": 1}
    assert env.open([frames[0], frames[1], frames[2], msgpack.packb({"a": 2})]) is None
    assert env.open([frames[0], frames[1], msgpack.packb({"v": 1}), frames[3]]) is None
    assert Envelope(b"x" * 32).open(frames) is None
    assert env.open(frames[:3]) is None
    assert env.open([b"other", *frames[1:]]) is None


def test_javascript_undefined_decodes_as_none() -> None:
    assert decode(b"\x92\xd4\x00\x00\x01") == [None, 1]
    assert decode(b"\xd4\x05\x07") == msgpack.ExtType(5, b"\x07")


def test_long_keys_are_hashed_first_as_hmac_does() -> None:
    key = bytes(range(100))
    header, body = b"\x80", b"\x80"
    expected = hmac.new(key, struct.pack(">I", 1) + header + body, hashlib.sha256).hexdigest()
    assert Envelope(key).sign(header, body) == expected.encode()


@pytest.fixture
def pair() -> Iterator[tuple[zmq.Socket[bytes], zmq.Socket[bytes]]]:
    ctx: zmq.Context[Any] = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://frames")
    b.connect("inproc://frames")
    try:
        yield a, b
    finally:
        a.close(linger=0)
        b.close(linger=0)
        ctx.term()


def _good(n: int) -> list[bytes]:
    return Envelope(KEY).request(msgpack.Packer(use_bin_type=True), f"m-{n}", "x.y", {"n": n})


def _recv_until_again(sock: zmq.Socket[bytes]) -> list[list[bytes] | None]:
    out: list[list[bytes] | None] = []
    while True:
        try:
            out.append(read_frames(sock, zmq.NOBLOCK))
        except zmq.Again:
            return out


def test_read_frames_drops_malformed_messages_without_losing_the_next(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    a, b = pair
    good = [_good(n) for n in range(5)]
    sent = [
        good[0],
        [b"not ours"],  # no delimiter
        [DELIMITER],  # only the delimiter
        good[1],
        [DELIMITER, b"0" * 64],  # short
        good[2],
        [DELIMITER, b"0" * 64, b"\x80", b"\x80", b"extra"],  # too long
        good[3],
        [b"junk", DELIMITER, b"a", b"b", b"c"],  # a delimiter after junk is still junk
        [DELIMITER, b"0" * 64, b"\x80"],  # three frames: the next delimiter is the fourth
        good[4],
        [DELIMITER, b"0" * 64, b"\x80"],  # short, and the last message sent
    ]
    for frames in sent:
        a.send_multipart(frames)
    time.sleep(0.05)
    got = [f for f in _recv_until_again(b) if f is not None]
    # every well-formed message arrives whole and in order, whatever came before it
    assert got == good


def test_send_frames_sends_one_message_of_any_length(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    a, b = pair
    for frames in ([b"one"], [b"a", b"b"], _good(7)):
        send_frames(a, frames, zmq.NOBLOCK)
        assert b.recv_multipart() == frames


def test_read_frames_raises_again_when_nothing_arrived(
    pair: tuple[zmq.Socket[bytes], zmq.Socket[bytes]],
) -> None:
    _, b = pair
    with pytest.raises(zmq.Again):
        read_frames(b, zmq.NOBLOCK)


def test_client_call_survives_malformed_replies_before_its_own() -> None:
    """A fake sidecar answers every request after three malformed messages."""
    ctx: zmq.Context[Any] = zmq.Context()
    router: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    env, packer = Envelope(KEY), msgpack.Packer(use_bin_type=True)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if not router.poll(50):
                continue
            ident, *frames = router.recv_multipart()
            opened = env.open(frames)
            if opened is None:
                continue
            h, body = opened
            header = packer.pack(
                {"v": 1, "id": "s-1", "type": "reply", "reply_to": h["id"], "ts": 0}
            )
            reply = packer.pack({"result": {"echo": body}})
            router.send_multipart([ident, DELIMITER, b"0" * 64])  # short
            router.send_multipart([ident, b"stray"])  # no delimiter
            router.send_multipart([ident, *env.frames(header, reply), b"extra"])  # too long
            router.send_multipart([ident, *env.frames(header, reply)])

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    info = ConnectionInfo("-", f"tcp://127.0.0.1:{port}", KEY, 0, 1)
    client = Client(info, timeout=10)
    try:
        assert client.call("x.y", n=1) == {"echo": {"n": 1}}
        assert client.call_async("x.y", n=2).result(10) == {"echo": {"n": 2}}
        assert client.call("x.y", n=3) == {"echo": {"n": 3}}
    finally:
        client.close()
        stop.set()
        server.join(5)
        router.close(linger=0)
        ctx.term()
