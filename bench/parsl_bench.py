"""Python side of `npm run bench -- parsl`: no-op apps through a remote pool and a local executor.

Usage: parsl_bench.py EXECUTORS_JSON TASKS WORKERS ROUNDS

One DataFlowKernel holds both executors: `pool` (from executors.json: sshd on loopback, the
sidecar's worker tunnel, SidecarLocalProvider) and `local` (a plain HighThroughputExecutor with
LocalProvider). Batches alternate between them, so that both see the same machine load.
Prints one JSON line: {"tasks", "remote_tasks_per_s", "local_tasks_per_s", "remote_p50_ms",
"local_p50_ms"}.
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

from parsl_sidecar import parsl_config


def noop() -> int:
    return 0


def main() -> None:
    path, tasks, workers, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    remote = parsl_config(path, executor_options={"pool": {"max_workers_per_node": workers}})
    local = HighThroughputExecutor(
        label="local",
        address="127.0.0.1",
        max_workers_per_node=workers,
        provider=LocalProvider(),
    )
    cfg = Config(
        executors=[*remote.executors, local],
        run_dir=tempfile.mkdtemp(prefix="psc-bench-runinfo-"),
        usage_tracking=0,
    )
    apps = {x: parsl.python_app(noop, executors=[x]) for x in ("pool", "local")}
    busy = {"pool": 0.0, "local": 0.0}
    lat: dict[str, list[float]] = {"pool": [], "local": []}
    batch = tasks // rounds
    with parsl.load(cfg):
        for x in apps:  # every worker started and connected
            for f in [apps[x]() for _ in range(50)]:
                f.result()
        for r in range(rounds):
            order = ("pool", "local") if r % 2 == 0 else ("local", "pool")
            for x in order:
                for _ in range(max(10, 200 // rounds)):
                    t = time.perf_counter()
                    apps[x]().result()
                    lat[x].append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                for f in [apps[x]() for _ in range(batch)]:
                    f.result()
                busy[x] += time.perf_counter() - t
    n = batch * rounds
    print(
        json.dumps(
            {
                "tasks": n,
                "remote_tasks_per_s": n / busy["pool"],
                "local_tasks_per_s": n / busy["local"],
                "remote_p50_ms": statistics.median(lat["pool"]),
                "local_p50_ms": statistics.median(lat["local"]),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
