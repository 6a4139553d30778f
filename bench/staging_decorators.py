"""Overhead of stage_app + log_app with empty dicts on no-op Parsl apps (ThreadPoolExecutor).

Alternates chunks of plain and decorated calls; per call, the time until the call returns (the
caller's cost), and per chunk, the time until every Future is done. Prints one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from concurrent.futures import Future, wait
from typing import Any

import parsl
from parsl.app.app import python_app
from parsl.config import Config
from parsl.executors.threads import ThreadPoolExecutor

import parsl_sidecar


def noop(inputs_dict: dict[str, Any] = {}, outputs_dict: dict[str, Any] = {}) -> int:  # noqa: B006
    return 0


def run(app: Any, n: int, calls: list[float]) -> float:
    futs: list[Future[Any]] = []
    t0 = time.perf_counter()
    for _ in range(n):
        c0 = time.perf_counter()
        futs.append(app(inputs_dict={}, outputs_dict={}))
        calls.append(time.perf_counter() - c0)
    wait(futs)
    return time.perf_counter() - t0


def main(total: int) -> None:
    parsl.load(Config(executors=[ThreadPoolExecutor(max_threads=2)], strategy="none"))
    try:
        plain = python_app(noop)
        deco = parsl_sidecar.log_app(parsl_sidecar.stage_app("local")(python_app(noop)))
        scratch: list[float] = []
        run(plain, 200, scratch)
        run(deco, 200, scratch)
        chunk = 100
        p_calls: list[float] = []
        d_calls: list[float] = []
        p_wall = d_wall = 0.0
        for i in range(total // chunk):
            if i % 2 == 0:
                p_wall += run(plain, chunk, p_calls)
                d_wall += run(deco, chunk, d_calls)
            else:
                d_wall += run(deco, chunk, d_calls)
                p_wall += run(plain, chunk, p_calls)
        n = len(d_calls)
        p_med = statistics.median(p_calls) * 1000
        d_med = statistics.median(d_calls) * 1000
        print(
            json.dumps(
                {
                    "apps": n,
                    "plain_call_median_ms": round(p_med, 4),
                    "decorated_call_median_ms": round(d_med, 4),
                    "overhead_ms": round(d_med - p_med, 4),
                    "e2e_overhead_ms_per_app": round((d_wall - p_wall) / n * 1000, 4),
                }
            )
        )
    finally:
        parsl.dfk().cleanup()
        parsl.clear()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
