"""The parsl-sidecar demo: a small Parsl workflow run through ``parsl-sidecar run``.

It runs on this machine (the embedded default pool), with a HighThroughputExecutor whose
interchange listens on loopback, a few python and bash apps that depend on each other, and
prints their results. ``npm run demo`` runs it as ``parsl-sidecar run -- python main.py``.
"""

from __future__ import annotations

import os
import sys
import tempfile

import parsl
from parsl.app.app import bash_app, python_app
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider


@python_app
def square(x: int) -> int:
    return x * x


@python_app
def total(*values: int) -> int:
    return sum(values)


@bash_app
def greet(name: str, stdout: str = parsl.AUTO_LOGNAME) -> str:
    return f"echo hello from a bash app, {name}; hostname"


def main() -> int:
    connection = os.environ.get("PARSL_SIDECAR_CONNECTION_FILE")
    print(f"sidecar connection file: {connection}")
    if connection:
        import parsl_sidecar

        with parsl_sidecar.connect() as client:
            status = client.call("sidecar.status")
            print(f"sidecar pid {status['pid']}, version {status['version']}")

    run_dir = tempfile.mkdtemp(prefix="parsl-sidecar-demo-")
    config = Config(
        executors=[
            HighThroughputExecutor(
                label="local",
                address="127.0.0.1",
                max_workers_per_node=2,
                provider=LocalProvider(init_blocks=1, max_blocks=1),
            )
        ],
        run_dir=run_dir,
        usage_tracking=0,
    )
    with parsl.load(config):
        squares = [square(i) for i in range(10)]
        result = total(*squares).result()
        hello = greet("demo")
        hello.result()
        with open(hello.stdout) as f:
            greeting = f.read().strip()
    parsl.clear()
    print(f"sum of squares 0..9 = {result}")
    print(greeting)
    ok = result == sum(i * i for i in range(10))
    print("demo OK" if ok else "demo FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
