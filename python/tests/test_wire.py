"""The envelope on the Python side: signature over exact bytes, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import struct

import msgpack

from parsl_sidecar._wire import DELIMITER, Envelope, decode

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
