"""The client against a real sidecar over ipc:// and tcp://: calls, concurrency, errors, events."""

from __future__ import annotations

import dataclasses
import gc
import math
import threading
import time
from concurrent.futures import wait
from typing import Any

import pytest
from sidecar_proc import Sidecar, wait_until

import parsl_sidecar
from parsl_sidecar import (
    Client,
    InvalidParams,
    SidecarError,
    SidecarTimeout,
    SidecarUnreachable,
    UnknownMethod,
)


def test_ping_round_trip(client: Client) -> None:
    before = time.time() * 1000
    res = client.call("sidecar.ping")
    assert res["pong"] is True
    assert res["ts"] >= before - 60_000


def test_status_fields(client: Client, sidecar: Sidecar) -> None:
    st = client.call("sidecar.status")
    assert st["pid"] == sidecar.proc.pid
    assert st["protocol_version"] == 1
    assert st["connection_file"] == str(sidecar.connection_file)
    assert st["endpoint"] == sidecar.endpoint
    assert st["uptime_s"] >= 0
    assert isinstance(st["version"], str) and st["version"]
    rpc = st["rpc"]
    assert rpc["received"] >= 1 and rpc["inFlight"] >= 1  # this very call
    assert set(rpc["dropped"]) >= {"framing", "signature", "decode", "replay", "stale", "type"}
    assert isinstance(st["services"], dict)


def test_describe_lists_methods_with_json_schemas(client: Client) -> None:
    d = client.call("sidecar.describe")
    assert d["protocol_version"] == 1
    # a sidecar started without limits set publishes the defaults this client assumes for a
    # file without them
    assert client.info.limits == parsl_sidecar.connection.Limits()
    assert d["limits"] == dataclasses.asdict(client.info.limits)
    methods = {m["name"]: m for m in d["methods"]}
    for name in ("sidecar.ping", "sidecar.status", "sidecar.describe", "sidecar.shutdown"):
        assert name in methods
    echo = methods["sidecar.echo"]
    assert echo["description"]
    assert echo["params"]["type"] == "object"
    assert echo["params"]["properties"]["delay_ms"]["type"] == "integer"
    assert echo["result"]["type"] == "object"


def test_invalid_params_names_field_and_value(client: Client) -> None:
    with pytest.raises(InvalidParams) as ei:
        client.call("sidecar.echo", delay_ms="x")
    e = ei.value
    assert e.code == "INVALID_PARAMS"
    assert "delay_ms" in str(e) and '"x"' in str(e)
    assert isinstance(e, ValueError)
    assert e.data["issues"][0]["path"] == "params.delay_ms"


def test_unknown_params_key_is_named(client: Client) -> None:
    with pytest.raises(InvalidParams, match="bogus"):
        client.call("sidecar.ping", bogus=1)


def test_unknown_method(client: Client) -> None:
    with pytest.raises(UnknownMethod) as ei:
        client.call("sidecar.nope")
    assert ei.value.code == "UNKNOWN_METHOD"
    assert "sidecar.nope" in str(ei.value)


def test_a_method_that_is_not_a_name_is_refused_at_once(client: Client) -> None:
    for bad in (123, "", None):
        with pytest.raises(TypeError, match="Expected method to be a method name"):
            client.call(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Expected method to be a method name"):
            client.call_async(bad)  # type: ignore[arg-type]
    assert client.call("sidecar.ping")["pong"]


def test_params_as_mapping_and_keywords(client: Client) -> None:
    assert client.call("sidecar.echo", {"value": 1}) == {"value": 1}
    assert client.call("sidecar.echo", {"value": 1}, value=2) == {"value": 2}
    payload = {"s": "é", "b": b"\x00\xff", "n": [1, 2.5, None, True], "m": {"k": "v"}}
    assert client.call("sidecar.echo", value=payload)["value"] == payload


def test_unencodable_params_raise_type_error_and_the_thread_recovers(client: Client) -> None:
    with pytest.raises(TypeError, match=r"sidecar\.echo"):
        client.call("sidecar.echo", value=object())
    assert client.call("sidecar.echo", value="ok") == {"value": "ok"}


def test_64_concurrent_call_async(client: Client) -> None:
    futures = [client.call_async("sidecar.echo", value=i, delay_ms=50) for i in range(64)]
    _, not_done = wait(futures, timeout=60)
    assert not not_done
    assert [f.result()["value"] for f in futures] == list(range(64))


def test_threads_get_their_own_answers(client: Client) -> None:
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for i in range(200):
                value = f"{t}:{i}"
                got = client.call("sidecar.echo", value=value)["value"]
                assert got == value, f"thread {t} sent {value} and got {got}"
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not any(th.is_alive() for th in threads)
    assert not errors, errors[:3]
    # the sockets of finished threads are closed, not kept until the client closes
    del threads
    gc.collect()
    wait_until(lambda: len(client._sockets.slots) <= 1, "dead threads' sockets to close")


def test_slow_call_does_not_delay_a_ping_from_another_thread(client: Client) -> None:
    slow_done = threading.Event()
    started = threading.Event()

    def slow() -> None:
        started.set()
        client.call("sidecar.echo", value="slow", delay_ms=1500)
        slow_done.set()

    th = threading.Thread(target=slow)
    th.start()
    started.wait(10)
    assert client.call("sidecar.ping")["pong"] is True
    assert not slow_done.is_set(), "the ping waited for the slow call"
    th.join(30)
    assert slow_done.is_set()


def test_slow_async_call_does_not_delay_other_async_calls(client: Client) -> None:
    slow = client.call_async("sidecar.echo", value="slow", delay_ms=1500)
    assert client.call_async("sidecar.ping").result(30)["pong"] is True
    assert not slow.done()
    assert slow.result(30) == {"value": "slow"}


def test_progress_callback_receives_progress(client: Client) -> None:
    seen: list[dict[str, Any]] = []
    assert client.call(
        "sidecar.echo", value=1, progress_steps=4, delay_ms=40, on_progress=seen.append
    ) == {"value": 1}
    assert seen == [{"step": i, "of": 4} for i in range(1, 5)]
    seen_async: list[dict[str, Any]] = []
    fut = client.call_async(
        "sidecar.echo", value=2, progress_steps=3, on_progress=seen_async.append
    )
    assert fut.result(30) == {"value": 2}
    assert seen_async == [{"step": i, "of": 3} for i in range(1, 4)]


def test_timeout_raises_sidecar_timeout(client: Client) -> None:
    with pytest.raises(SidecarTimeout) as ei:
        client.call("sidecar.echo", delay_ms=700, timeout=0.2)
    e = ei.value
    assert isinstance(e, TimeoutError) and e.code == "TIMEOUT"
    assert "sidecar.echo" in str(e) and "0.2 s" in str(e) and client.endpoint in str(e)
    # the late reply arrives while the next call waits, and is not taken for its answer
    assert client.call("sidecar.echo", value="mine", delay_ms=1200) == {"value": "mine"}
    fut = client.call_async("sidecar.echo", delay_ms=700, timeout=0.2)
    with pytest.raises(SidecarTimeout):
        fut.result(30)


def test_bad_timeouts_are_refused(client: Client) -> None:
    with pytest.raises(ValueError, match="timeout"):
        client.call("sidecar.ping", timeout=0)
    assert client.call("sidecar.ping", timeout=math.inf)["pong"]


def test_call_after_close_is_unreachable(sidecar: Sidecar) -> None:
    c = parsl_sidecar.connect(sidecar.connection_file)
    c.call("sidecar.ping")
    c.close()
    c.close()  # idempotent
    assert c.closed
    with pytest.raises(SidecarUnreachable, match="closed"):
        c.call("sidecar.ping")
    with pytest.raises(SidecarUnreachable):
        c.call_async("sidecar.ping")


def test_close_fails_calls_in_flight(sidecar: Sidecar) -> None:
    c = parsl_sidecar.connect(sidecar.connection_file)
    fut = c.call_async("sidecar.echo", delay_ms=5000)
    errors: list[BaseException] = []

    def blocking() -> None:
        try:
            c.call("sidecar.echo", delay_ms=5000)
        except BaseException as e:
            errors.append(e)

    th = threading.Thread(target=blocking)
    th.start()
    wait_until(lambda: any(s.busy for s in c._sockets.slots), "the blocking call to start")
    c.close()
    with pytest.raises(SidecarUnreachable):
        fut.result(30)
    th.join(30)
    assert len(errors) == 1 and isinstance(errors[0], SidecarUnreachable)
    wait_until(lambda: c._termed, "the client's context to end")


def test_context_manager_closes(sidecar: Sidecar) -> None:
    with parsl_sidecar.connect(sidecar.connection_file) as c:
        c.call_async("sidecar.ping").result(30)
        c.call("sidecar.ping")
    assert c.closed and c._termed
    assert not any(t.name == "parsl-sidecar-io" and t.is_alive() for t in threading.enumerate())


def test_subscribe_and_unsubscribe_round_trip(client: Client) -> None:
    def subscribers() -> int:
        n: int = client.call("sidecar.status")["rpc"]["subscribers"]
        return n

    before = subscribers()
    received: list[parsl_sidecar.Event] = []
    sub = client.subscribe(["log"], received.append, history=True)
    assert subscribers() == before + 1
    assert sub.matches("log") and sub.matches("log.x") and not sub.matches("logs")
    with client.subscribe(["job"], received.append):
        assert client._subs.topics() == ["job", "log"]
    assert client._subs.topics() == ["log"]
    sub.close()
    assert subscribers() == before
    assert all(e.topic.startswith("log") for e in received)


def test_sidecar_error_is_catchable_generically(client: Client) -> None:
    with pytest.raises(SidecarError) as ei:
        client.call("nope.nope")
    assert ei.value.code == "UNKNOWN_METHOD"


def test_reply_right_after_progress_is_not_held_back(client: Client) -> None:
    # the server once stranded a reply queued in the same tick its send queue drained
    for i in range(20):
        seen: list[dict[str, Any]] = []
        assert client.call(
            "sidecar.echo", value=i, progress_steps=2, timeout=5, on_progress=seen.append
        ) == {"value": i}
        assert len(seen) == 2


def test_calls_made_from_callbacks_on_the_io_thread_are_sent(client: Client) -> None:
    # a done-callback runs on the I/O thread; what it starts must go out without a wakeup
    done = threading.Event()
    got: list[int] = []

    def step(fut: Any) -> None:
        got.append(fut.result()["value"])
        if len(got) < 50:
            client.call_async("sidecar.echo", value=len(got), timeout=30).add_done_callback(step)
        else:
            done.set()

    client.call_async("sidecar.echo", value=0, timeout=30).add_done_callback(step)
    assert done.wait(60)
    assert got == list(range(50))


def test_calls_in_flight_travel_in_batches_and_each_gets_its_own_answer(client: Client) -> None:
    assert "batch" in client.info.features
    received = client.call("sidecar.status")["rpc"]["received"]
    n = 2000
    futures = [client.call_async("sidecar.echo", value=i) for i in range(n)]
    bad = [
        client.call_async("sidecar.nope"),
        client.call_async("sidecar.echo", delay_ms="soon"),
    ]
    _, not_done = wait(futures + bad, timeout=60)
    assert not not_done
    assert [f.result()["value"] for f in futures] == list(range(n))
    with pytest.raises(UnknownMethod):
        bad[0].result()
    with pytest.raises(InvalidParams, match="delay_ms"):
        bad[1].result()
    # the sidecar counts messages: 2,002 calls queued at once took far fewer of them
    messages = client.call("sidecar.status")["rpc"]["received"] - received
    assert messages < n / 4, messages


def test_a_sidecar_without_batches_gets_one_message_per_call(sidecar: Sidecar) -> None:
    info = parsl_sidecar.connection.read_connection_file(sidecar.connection_file)
    old = parsl_sidecar.Client(dataclasses.replace(info, features=()))
    try:
        received = old.call("sidecar.status")["rpc"]["received"]
        futures = [old.call_async("sidecar.echo", value=i) for i in range(200)]
        assert [f.result(60)["value"] for f in futures] == list(range(200))
        assert old.call("sidecar.status")["rpc"]["received"] - received == 201
    finally:
        old.close()


def test_big_params_are_not_piled_into_one_message(client: Client) -> None:
    big = "x" * 600_000
    started: list[Any] = []

    def go(_: Any) -> None:  # on the I/O thread: all six are queued before it sends any
        started.extend(client.call_async("sidecar.echo", value=big + str(i)) for i in range(6))

    received = client.call("sidecar.status")["rpc"]["received"]
    client.call_async("sidecar.echo", delay_ms=100).add_done_callback(go)
    wait_until(lambda: len(started) == 6, "the six big calls to start")
    assert [f.result(60)["value"] for f in started] == [big + str(i) for i in range(6)]
    # a batch ends once it holds 1 MiB: two 600 kB calls per message (the echo and this status
    # call are the other two messages)
    assert client.call("sidecar.status")["rpc"]["received"] - received == 3 + 2
