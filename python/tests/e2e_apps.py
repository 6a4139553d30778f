"""Functions of the executors end-to-end tests; workers import this module (via PYTHONPATH)."""

from __future__ import annotations

import os


def square(x: int) -> tuple[int, str, int]:
    """x*x, the pool the worker runs on, and the worker's pid."""
    return x * x, os.environ.get("POOL_NAME", "?"), os.getpid()


def echo_pool(x: int, outputs: tuple[object, ...] = ()) -> str:
    """Bash: write `<pool> <x>` to the first output file."""
    return f'echo "$POOL_NAME {x}" > {outputs[0]}'


def noop() -> int:
    """Nothing, for throughput."""
    return 0
