"""The client and the sidecar's limit on a message (docs/protocol.md, Limits), against a real
sidecar over ipc:// and tcp:// started with a 64 KiB limit so that the messages stay cheap."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sidecar_proc import Sidecar, running_sidecar, short_tmpdir, wait_until

import parsl_sidecar
from parsl_sidecar import Client, SidecarError
from parsl_sidecar.connection import Limits, read_connection_file

LIMIT = 64 * 1024
PENDING = 256 * 1024


@pytest.fixture(scope="module", params=["ipc", "tcp"])
def small(request: pytest.FixtureRequest) -> Iterator[Sidecar]:
    """A sidecar that takes messages of at most 64 KiB."""
    env = {"PARSL_SIDECAR_RPC_MAX_MESSAGE": "64KiB", "PARSL_SIDECAR_RPC_MAX_PENDING": "256KiB"}
    with running_sidecar(request.param, env=env) as sc:
        yield sc


@pytest.fixture
def fresh(small: Sidecar) -> Iterator[Client]:
    """A new client: its message ids are short and of one length for its first 15 messages."""
    c = parsl_sidecar.connect(small.connection_file, timeout=15, prompt=None)
    try:
        yield c
    finally:
        c.close()


def disconnected(c: Client) -> dict[str, int]:
    counts: dict[str, int] = c.call("sidecar.status")["rpc"]["disconnected"]
    return counts


def too_large(e: pytest.ExceptionInfo[SidecarError]) -> int:
    assert e.value.code == "RPC_MESSAGE_TOO_LARGE", repr(e.value)
    size: int = e.value.data["size"]
    return size


def exact_fit(c: Client) -> int:
    """The length of an echoed string whose request is exactly the limit, from the client's
    own count of one over it."""
    with pytest.raises(SidecarError) as e:
        c.call("sidecar.echo", value="x" * (LIMIT - 10))
    return LIMIT - 10 - (too_large(e) - LIMIT)


def test_the_limits_are_published_in_file_and_describe(fresh: Client, small: Sidecar) -> None:
    published = {"message_bytes": LIMIT, "pending_bytes": PENDING}
    assert json.loads(small.connection_file.read_text())["limits"] == published
    assert fresh.info.limits == Limits(LIMIT, PENDING)
    assert fresh.call("sidecar.describe")["limits"] == published


def test_a_call_of_exactly_the_limit_goes_and_one_byte_more_fails_at_once(fresh: Client) -> None:
    cut = disconnected(fresh)["message_bytes"]
    fit = exact_fit(fresh)
    # exactly the limit: the sidecar takes it (it would close the connection otherwise)
    assert len(fresh.call("sidecar.echo", value="x" * fit)["value"]) == fit
    started = time.monotonic()
    with pytest.raises(SidecarError) as e:
        fresh.call("sidecar.echo", value="x" * (fit + 1))
    assert time.monotonic() - started < 1  # at once, not after the call's timeout
    assert too_large(e) == LIMIT + 1
    assert e.value.data == {
        "method": "sidecar.echo",
        "size": LIMIT + 1,
        "limit": LIMIT,
        "variable": "PARSL_SIDECAR_RPC_MAX_MESSAGE",
    }
    assert str(e.value) == (
        "Cannot send sidecar.echo: its request is 65537 bytes signed, over the sidecar's limit "
        "of 65536 bytes per message (message_bytes), past which it closes the connection. Send "
        "less per call (split the work into several calls), or start the sidecar with a larger "
        "limit: `PARSL_SIDECAR_RPC_MAX_MESSAGE=128KiB parsl-sidecar serve --detach`"
    )
    # nothing went: no connection was closed, and the client goes on
    assert fresh.call("sidecar.ping")["pong"] is True
    assert disconnected(fresh)["message_bytes"] == cut


def test_call_async_over_the_limit_fails_at_once(fresh: Client) -> None:
    fit = exact_fit(fresh)
    assert len(fresh.call_async("sidecar.echo", value="y" * fit).result(15)["value"]) == fit
    with pytest.raises(SidecarError) as e:
        fresh.call_async("sidecar.echo", value="y" * (fit + 1))
    assert too_large(e) == LIMIT + 1
    assert "Cannot send sidecar.echo: its request is 65537 bytes signed" in str(e.value)
    assert fresh.call_async("sidecar.ping").result(15)["pong"] is True


def test_the_pending_budget_is_named_when_the_suggested_limit_would_pass_it(small: Sidecar) -> None:
    info = read_connection_file(small.connection_file)
    c = Client(dataclasses.replace(info, limits=Limits(LIMIT, LIMIT)))
    try:
        with pytest.raises(SidecarError) as e:
            c.call("sidecar.echo", value="z" * 100_000)
    finally:
        c.close()
    assert (
        "`PARSL_SIDECAR_RPC_MAX_MESSAGE=128KiB PARSL_SIDECAR_RPC_MAX_PENDING=256KiB "
        "parsl-sidecar serve --detach`"
    ) in str(e.value)


def test_a_burst_that_together_passes_the_limit_is_split_and_every_call_is_served(
    fresh: Client,
) -> None:
    before = fresh.call("sidecar.status")["rpc"]
    received = before["received"]
    values = ["b" * 20_000 + str(i) for i in range(12)]
    values[5] = "B" * (LIMIT - 200)  # fits alone, and in no batch with another
    started: list[Future[Any]] = []

    def go(_: Any) -> None:  # on the I/O thread: all of them are queued before it sends any
        started.extend(fresh.call_async("sidecar.echo", value=v, timeout=15) for v in values)

    fresh.call_async("sidecar.echo", delay_ms=100).add_done_callback(go)
    wait_until(lambda: len(started) == len(values), "the burst to start")
    assert [f.result(30)["value"] for f in started] == values
    # 12 calls of ~240 KiB: 1 message would be 4 times the limit; each batch holds at most three
    # 20 kB calls, and the 65 kB one goes alone
    messages = fresh.call("sidecar.status")["rpc"]["received"] - received - 1
    assert 1 + 5 <= messages <= 1 + 8, messages
    assert disconnected(fresh) == before["disconnected"]


def test_an_older_connection_file_without_limits_takes_the_defaults(small: Sidecar) -> None:
    older = json.loads(small.connection_file.read_text())
    del older["limits"]
    d = short_tmpdir()
    file = Path(d) / "sidecar.json"
    file.write_text(json.dumps(older))
    os.chmod(file, 0o600)
    try:
        with parsl_sidecar.connect(file, timeout=15, prompt=None) as c:
            assert c.info.limits == Limits(16 * 1024 * 1024, 32 * 1024 * 1024)
            assert c.call("sidecar.ping")["pong"] is True
            futures = [c.call_async("sidecar.echo", value=i) for i in range(50)]
            assert [f.result(15)["value"] for f in futures] == list(range(50))
    finally:
        file.unlink()
        d.rmdir()
