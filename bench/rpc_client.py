"""The Python half of bench/rpc.ts: our client against the sidecar, and the raw pyzmq floor.

Measures, alternating ours and the floor in every round: the latency of one call at a time
(sidecar.ping vs a REQ/REP echo of a similar ~100-byte MessagePack payload) and the calls/s
with 64 in flight (call_async vs a DEALER/ROUTER pipelined echo). calls_per_s keeps the window
full from the replies' callbacks (like the floor's single pipelined loop);
calls_per_s_caller_thread refills it from the calling thread (a thread handoff per call).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import msgpack
import parsl_sidecar
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
WINDOW = 64


def percentiles(ns: list[int]) -> tuple[float, float]:
    ns.sort()
    return ns[len(ns) // 2] / 1000, ns[min(len(ns) - 1, int(len(ns) * 0.99))] / 1000


def ours_latency(client: parsl_sidecar.Client, n: int) -> tuple[float, float]:
    call, clock = client.call, time.perf_counter_ns
    for _ in range(min(n, 500)):
        call("sidecar.ping")
    out = [0] * n
    for i in range(n):
        t = clock()
        call("sidecar.ping")
        out[i] = clock() - t
    return percentiles(out)


def ours_throughput(client: parsl_sidecar.Client, n: int) -> float:
    slots = threading.BoundedSemaphore(WINDOW)
    done = threading.Event()
    left = [n]
    lock = threading.Lock()

    def finished(_: Any) -> None:
        slots.release()
        with lock:
            left[0] -= 1
            if left[0] == 0:
                done.set()

    t = time.perf_counter()
    acquire, call_async = slots.acquire, client.call_async
    for _ in range(n):
        acquire()
        call_async("sidecar.ping").add_done_callback(finished)
    done.wait()
    return n / (time.perf_counter() - t)


def ours_throughput_chained(client: parsl_sidecar.Client, n: int) -> float:
    """64 chains of calls: each reply's callback (on the I/O thread) starts the next call."""
    done = threading.Event()
    lock = threading.Lock()
    count = {"started": 0, "finished": 0}

    def finished(_: Any) -> None:
        with lock:
            count["finished"] += 1
            again = count["started"] < n
            if again:
                count["started"] += 1
            if count["finished"] == n:
                done.set()
        if again:
            client.call_async("sidecar.ping").add_done_callback(finished)

    t = time.perf_counter()
    for _ in range(min(WINDOW, n)):
        with lock:
            count["started"] += 1
        client.call_async("sidecar.ping").add_done_callback(finished)
    done.wait()
    return n / (time.perf_counter() - t)


def payload(i: int) -> bytes:
    # about the size of our request's header + body
    return msgpack.packb(
        {
            "v": 1,
            "id": f"0123456789ab-{i:x}",
            "type": "request",
            "method": "sidecar.ping",
            "ts": time.time_ns() // 1_000_000,
            "pad": "x" * 24,
        }
    )


def floor_latency(sock: zmq.Socket[bytes], n: int) -> tuple[float, float]:
    send, recv, clock, unpackb = sock.send, sock.recv, time.perf_counter_ns, msgpack.unpackb
    for i in range(min(n, 500)):
        send(payload(i))
        recv()
    out = [0] * n
    for i in range(n):
        t = clock()
        send(payload(i))
        unpackb(recv())
        out[i] = clock() - t
    return percentiles(out)


def echo_latency(sock: zmq.Socket[bytes], n: int, frames: int) -> tuple[float, float]:
    """A raw echo of the protocol's four frames (delimiter, signature, header, body) or of one."""
    send, recv, more, clock = sock.send, sock.recv, sock.getsockopt, time.perf_counter_ns
    rcvmore, sndmore = int(zmq.RCVMORE), int(zmq.SNDMORE)
    parts = [b"<PSC|MSG>", b"0" * 64, payload(0)[:70], b"\x80"] if frames == 4 else [payload(0)]

    def one() -> None:
        for part in parts[:-1]:
            send(part, sndmore)
        send(parts[-1])
        recv()
        while more(rcvmore):
            recv()

    for _ in range(min(n, 500)):
        one()
    out = [0] * n
    for i in range(n):
        t = clock()
        one()
        out[i] = clock() - t
    return percentiles(out)


def floor_throughput(sock: zmq.Socket[bytes], n: int) -> float:
    send, recv, unpackb = sock.send, sock.recv, msgpack.unpackb
    t = time.perf_counter()
    sent = 0
    for _ in range(min(WINDOW, n)):
        send(payload(sent))
        sent += 1
    for _ in range(n):
        unpackb(recv())
        if sent < n:
            send(payload(sent))
            sent += 1
    return n / (time.perf_counter() - t)


def start_floor(kind: str, endpoint: str) -> subprocess.Popen[bytes]:
    if kind in ("zeromqjs", "zmtp"):
        cmd = ["node", os.path.join(HERE, "rpc_echo_server.mjs"), kind, endpoint]
    else:
        cmd = [sys.executable, os.path.join(HERE, "rpc_floor_server.py"), kind, endpoint]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connection", required=True)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rounds, n_lat, n_tp = (3, 3000, 10000) if args.quick else (5, 20000, 50000)

    tmp = tempfile.mkdtemp(prefix="psc-floor-", dir="/tmp")
    rep_ep, router_ep = f"ipc://{tmp}/rep.sock", f"ipc://{tmp}/router.sock"
    js_ep = f"ipc://{tmp}/zeromqjs.sock"
    stack_ep = f"ipc://{tmp}/zmtp.sock"
    floors = [
        start_floor("rep", rep_ep),
        start_floor("router", router_ep),
        start_floor("zeromqjs", js_ep),
        start_floor("zmtp", stack_ep),
    ]
    ctx: zmq.Context[Any] = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.connect(rep_ep)
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.SNDHWM, 100_000)
    dealer.setsockopt(zmq.RCVHWM, 100_000)
    dealer.connect(router_ep)
    # references: the protocol's four frames echoed by the sidecar's own ROUTER (the stack's
    # floor), and the same echo through zeromq.js (libzmq), one frame and four
    dealer_stack = ctx.socket(zmq.DEALER)
    dealer_stack.connect(stack_ep)
    req_js = ctx.socket(zmq.REQ)
    req_js.connect(js_ep)
    dealer_js = ctx.socket(zmq.DEALER)
    dealer_js.connect(js_ep)
    client = parsl_sidecar.connect(args.connection)
    keys = ("p50", "p99", "cps", "tcps", "fp50", "fp99", "fcps", "e4st", "e4py", "e1js", "e4js")
    res: dict[str, list[float]] = {k: [] for k in keys}
    try:
        for r in range(rounds):
            p50, p99 = ours_latency(client, n_lat)
            fp50, fp99 = floor_latency(req, n_lat)
            cps = ours_throughput_chained(client, n_tp)
            fcps = floor_throughput(dealer, n_tp)
            tcps = ours_throughput(client, n_tp)
            e4st = echo_latency(dealer_stack, n_lat, 4)[0]
            e4py = echo_latency(dealer, n_lat, 4)[0]
            e1js = echo_latency(req_js, n_lat, 1)[0]
            e4js = echo_latency(dealer_js, n_lat, 4)[0]
            values = (p50, p99, cps, tcps, fp50, fp99, fcps, e4st, e4py, e1js, e4js)
            for k, v in zip(keys, values, strict=True):
                res[k].append(v)
            print(
                f"round {r + 1}/{rounds}: ours p50 {p50:.1f} us p99 {p99:.1f} us {cps:,.0f} calls/s"
                f" ({tcps:,.0f} from a caller thread) | floor p50 {fp50:.1f} us p99 {fp99:.1f} us"
                f" {fcps:,.0f} calls/s | echo p50: sidecar's router 4 frames {e4st:.1f} us,"
                f" pyzmq 4 frames {e4py:.1f} us, zeromq.js"
                f" 1 frame {e1js:.1f} us, 4 frames {e4js:.1f} us",
                file=sys.stderr,
            )
    finally:
        client.close()
        req.close(linger=0)
        dealer.close(linger=0)
        dealer_stack.close(linger=0)
        req_js.close(linger=0)
        dealer_js.close(linger=0)
        ctx.term()
        for p in floors:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    med = {k: statistics.median(v) for k, v in res.items()}
    print(
        json.dumps(
            {
                "p50_us": round(med["p50"], 1),
                "p99_us": round(med["p99"], 1),
                "calls_per_s": round(med["cps"]),
                "calls_per_s_caller_thread": round(med["tcps"]),
                "floor_p50_us": round(med["fp50"], 1),
                "floor_p99_us": round(med["fp99"], 1),
                "floor_calls_per_s": round(med["fcps"]),
                "echo4_stack_p50_us": round(med["e4st"], 1),
                "echo4_pyzmq_p50_us": round(med["e4py"], 1),
                "echo1_zeromqjs_p50_us": round(med["e1js"], 1),
                "echo4_zeromqjs_p50_us": round(med["e4js"], 1),
                "rounds": rounds,
                "calls_per_round": {"latency": n_lat, "throughput": n_tp},
            }
        )
    )


if __name__ == "__main__":
    main()
