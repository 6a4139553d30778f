"""A two-pool Parsl workflow: python apps on one pool, bash apps on the other, one result.

Run it under a sidecar (``parsl-sidecar run -- python workflow.py executors.json``) or with
``bash run.sh``, which starts two loopback sshd pools first. Each executor of executors.json
gets its own HighThroughputExecutor; the sidecar completes the file (ports, tunnels), checks
each pool (reachable, same Python minor and Parsl version, writable directories) and starts the
workers on the pools' head nodes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import parsl
from parsl.app.app import bash_app, python_app
from parsl.data_provider.files import File

from parsl_sidecar import parsl_config


@python_app(executors=["cpu_executor"])
def simulate(seed: int) -> float:
    """A stand-in for a computation: a pseudo-random number from the seed."""
    import os
    import random

    return random.Random(seed).random() + 0 * len(os.environ.get("POOL_NAME", ""))


@bash_app(executors=["gpu_executor"])
def postprocess(value: float, outputs: tuple[File, ...] = ()) -> str:
    """A stand-in for a tool run on the other pool: writes the value and where it ran."""
    return f'echo "{value:.6f} $POOL_NAME $(hostname)" > {outputs[0].filepath}'


@python_app(executors=["cpu_executor"])
def summarize(inputs: tuple[File, ...] = ()) -> dict[str, object]:
    """Read every postprocessed file and summarize."""
    values, pools = [], set()
    for f in inputs:
        with open(f.filepath) as fh:
            v, pool, _host = fh.read().split()
        values.append(float(v))
        pools.add(pool)
    return {"n": len(values), "mean": sum(values) / len(values), "pools": sorted(pools)}


def main() -> int:
    executors = sys.argv[1] if len(sys.argv) > 1 else "executors.json"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    work = tempfile.mkdtemp(prefix="multihost-")
    config = parsl_config(executors, run_dir=os.path.join(work, "runinfo"))
    with parsl.load(config):
        files = []
        for i in range(n):
            out = File(os.path.join(work, f"post-{i}.txt"))
            files.append(postprocess(simulate(i), outputs=[out]).outputs[0])
        summary = summarize(inputs=files).result()
    parsl.clear()
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary))
    ok = summary["n"] == n and summary["pools"] == ["pool_b"]
    print("multihost OK" if ok else "multihost FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
