"""Python side of `npm run bench -- parsl`: no-op apps through one executor, timed.

Usage: parsl_bench.py remote EXECUTORS_JSON N WORKERS | parsl_bench.py local N WORKERS
Prints one JSON line: {"mode", "tasks", "tasks_per_s", "p50_ms"}.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

import parsl
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider


@parsl.python_app
def noop() -> int:
    return 0


def measure(n: int) -> dict[str, float]:
    # warm up: every worker started and connected
    for f in [noop() for _ in range(50)]:
        f.result()
    # latency: one task at a time
    lat = []
    for _ in range(min(200, max(20, n // 10))):
        t = time.perf_counter()
        noop().result()
        lat.append((time.perf_counter() - t) * 1000)
    # throughput: n tasks in flight at once
    t = time.perf_counter()
    futs = [noop() for _ in range(n)]
    for f in futs:
        f.result()
    dt = time.perf_counter() - t
    return {"tasks_per_s": n / dt, "p50_ms": statistics.median(lat)}


def main() -> None:
    mode = sys.argv[1]
    run_dir = tempfile.mkdtemp(prefix="psc-bench-runinfo-")
    if mode == "remote":
        from parsl_sidecar import parsl_config

        path, n, workers = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        cfg = parsl_config(
            path,
            run_dir=run_dir,
            executor_options={"pool": {"max_workers_per_node": workers}},
        )
    else:
        n, workers = int(sys.argv[2]), int(sys.argv[3])
        cfg = Config(
            executors=[
                HighThroughputExecutor(
                    label="local",
                    address="127.0.0.1",
                    max_workers_per_node=workers,
                    provider=LocalProvider(),
                )
            ],
            run_dir=run_dir,
            usage_tracking=0,
        )
    with parsl.load(cfg):
        res = measure(n)
    print(json.dumps({"mode": mode, "tasks": n, **res}), flush=True)


if __name__ == "__main__":
    main()
