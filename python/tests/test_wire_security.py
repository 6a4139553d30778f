"""What the sidecar does with traffic a client never sends: forged, replayed, garbled, cut off."""

from __future__ import annotations

import os
import secrets
import shutil
import time

import msgpack
import pytest
from rawwire import first_reply, raw_dealer, replies, request_frames, signed_garbage
from sidecar_proc import Sidecar, short_tmpdir, wait_until

import parsl_sidecar
from parsl_sidecar import Client, SidecarUnreachable, VersionMismatch
from parsl_sidecar._wire import DELIMITER
from parsl_sidecar.connection import read_connection_file


def dropped(client: Client) -> dict[str, int]:
    d: dict[str, int] = client.call("sidecar.status")["rpc"]["dropped"]
    return d


def test_forged_signature_gets_no_reply_and_is_counted(client: Client, sidecar: Sidecar) -> None:
    info = read_connection_file(sidecar.connection_file)
    before = dropped(client)["signature"]
    with raw_dealer(info) as sock:
        _, frames = request_frames(secrets.token_bytes(32), "sidecar.ping")
        sock.send_multipart(frames)
        wait_until(lambda: dropped(client)["signature"] == before + 1, "the forged message")
        assert replies(sock, info.key, 0.5) == []
        # the server still serves others, and this socket once it signs properly
        assert client.call("sidecar.ping")["pong"] is True
        _, good = request_frames(info.key, "sidecar.ping")
        sock.send_multipart(good)
        header, body = first_reply(sock, info.key)
        assert header["type"] == "reply" and body["result"]["pong"] is True


def test_replayed_message_is_dropped(client: Client, sidecar: Sidecar) -> None:
    info = read_connection_file(sidecar.connection_file)
    before = dropped(client)["replay"]
    with raw_dealer(info) as sock:
        msg_id, frames = request_frames(info.key, "sidecar.echo", {"value": "once"})
        sock.send_multipart(frames)
        header, body = first_reply(sock, info.key)
        assert header["reply_to"] == msg_id and body == {"result": {"value": "once"}}
        sock.send_multipart(frames)  # the exact same frames again
        wait_until(lambda: dropped(client)["replay"] == before + 1, "the replay to be dropped")
        assert replies(sock, info.key, 0.5) == []


def test_stale_timestamp_is_dropped(client: Client, sidecar: Sidecar) -> None:
    info = read_connection_file(sidecar.connection_file)
    before = dropped(client)["stale"]
    packer = msgpack.Packer(use_bin_type=True)
    header = packer.pack(
        {"v": 1, "id": "old-1", "type": "request", "method": "sidecar.ping", "ts": 1}
    )
    with raw_dealer(info) as sock:
        sock.send_multipart(signed_garbage(info.key, header, packer.pack({})))
        wait_until(lambda: dropped(client)["stale"] == before + 1, "the stale message")
        assert replies(sock, info.key, 0.3) == []


def test_wrong_protocol_version_gets_version_mismatch(client: Client) -> None:
    client._version = 2
    with pytest.raises(VersionMismatch) as ei:
        client.call("sidecar.ping")
    assert ei.value.code == "VERSION_MISMATCH"
    assert ei.value.data["supported"] == [1] and ei.value.data["got"] == 2
    client._version = 1
    assert client.call("sidecar.ping")["pong"] is True


def test_truncated_and_garbage_frames_are_dropped(client: Client, sidecar: Sidecar) -> None:
    info = read_connection_file(sidecar.connection_file)
    before = dropped(client)
    packer = msgpack.Packer(use_bin_type=True)
    good_header = packer.pack(
        {"v": 1, "id": "g-1", "type": "request", "method": "sidecar.ping", "ts": 0}
    )
    bad: list[list[bytes]] = [
        [b"hello"],  # one frame, no delimiter
        [DELIMITER, b"sig"],  # truncated
        [DELIMITER, b"0" * 64, b"\x80", b"\x80", b"extra"],  # too many frames
        signed_garbage(info.key, b"\xc1\xc1", b"\x80"),  # signed, header not MessagePack
        signed_garbage(info.key, good_header, b"\x92\x01"),  # signed, body cut short
        signed_garbage(info.key, packer.pack([1, 2]), b"\x80"),  # signed, header not a map
        signed_garbage(info.key, packer.pack({"v": 1}), b"\x80"),  # signed, header lacks fields
    ]
    with raw_dealer(info) as sock:
        for frames in bad:
            sock.send_multipart(frames)

        def all_counted() -> bool:
            now = dropped(client)
            return sum(now.values()) - sum(before.values()) >= len(bad)

        wait_until(all_counted, "every bad message to be dropped")
        assert replies(sock, info.key, 0.3) == []
    after = dropped(client)
    assert after["framing"] - before["framing"] == 3
    assert after["decode"] - before["decode"] == 4
    assert client.call("sidecar.ping")["pong"] is True


def test_reply_typed_message_from_a_client_is_dropped(client: Client, sidecar: Sidecar) -> None:
    info = read_connection_file(sidecar.connection_file)
    before = dropped(client)["type"]
    packer = msgpack.Packer(use_bin_type=True)
    header = packer.pack({"v": 1, "id": "t-1", "type": "reply", "reply_to": "x", "ts": _now_ms()})
    with raw_dealer(info) as sock:
        sock.send_multipart(signed_garbage(info.key, header, packer.pack({"result": 1})))
        wait_until(lambda: dropped(client)["type"] == before + 1, "the non-request message")


def test_client_that_disconnects_mid_call_does_not_hurt_the_server(
    client: Client, sidecar: Sidecar
) -> None:
    info = read_connection_file(sidecar.connection_file)
    with raw_dealer(info) as sock:
        _, frames = request_frames(info.key, "sidecar.echo", {"delay_ms": 500})
        sock.send_multipart(frames)
        wait_until(lambda: client.call("sidecar.status")["rpc"]["inFlight"] >= 2, "the call")
    # the socket is gone; its call finishes and the reply has nowhere to go
    wait_until(lambda: client.call("sidecar.status")["rpc"]["inFlight"] == 1, "the call to end")
    assert client.call("sidecar.echo", value="still here") == {"value": "still here"}
    assert sidecar.proc.poll() is None


def test_client_ignores_replies_signed_with_another_key(sidecar: Sidecar) -> None:
    info = read_connection_file(sidecar.connection_file)
    forged = parsl_sidecar.Client(
        parsl_sidecar.ConnectionInfo(
            path=info.path,
            endpoint=info.endpoint,
            key=secrets.token_bytes(32),
            pid=info.pid,
            protocol_version=1,
        ),
        timeout=0.5,
    )
    with forged, pytest.raises(parsl_sidecar.SidecarTimeout):
        forged.call("sidecar.ping")


def test_connection_file_readable_by_others_is_refused(sidecar: Sidecar) -> None:
    d = short_tmpdir()
    try:
        copy = d / "sidecar.json"
        shutil.copy(sidecar.connection_file, copy)
        os.chmod(copy, 0o644)
        with pytest.raises(SidecarUnreachable) as ei:
            parsl_sidecar.connect(copy)
        assert ei.value.code == "BAD_CONNECTION_FILE"
        assert "chmod 600" in str(ei.value) and "644" in str(ei.value)
        os.chmod(copy, 0o600)
        with parsl_sidecar.connect(copy) as c:
            assert c.call("sidecar.ping")["pong"] is True
    finally:
        shutil.rmtree(d)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
