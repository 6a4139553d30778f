"""App bodies of the soak workflow (bench/soak/workflow.py); the workers import this module
(WORKER_INIT puts bench/soak on PYTHONPATH), so nothing here is pickled by value."""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Any


def mark(marks: str, task_id: int) -> None:
    """One file per finished execution of a task, written just before it returns: two files for
    one id are a task that ran to completion twice (docs/benchmarks.md, "soak")."""
    path = os.path.join(marks, f"{task_id}.{uuid.uuid4().hex}")
    with open(path, "x") as f:
        # where it ran (the pool's network namespace, then Parsl's block): a duplicate across two
        # blocks is Parsl retrying a lost block's task, one within a block is something else
        f.write(
            os.readlink("/proc/self/ns/net") + "\n" + os.environ.get("PARSL_WORKER_BLOCK_ID", "?")
        )


def echo(task_id: int, payload: bytes, marks: str) -> tuple[int, str, int]:
    """A plain task: its id, the SHA-256 and length of its argument."""
    digest = hashlib.sha256(payload).hexdigest()
    mark(marks, task_id)
    return task_id, digest, len(payload)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def out_body(task_id: int, n: int, size: int) -> bytes:
    """The bytes of output file n of a task: the workflow rebuilds them to check the copy."""
    seed = hashlib.sha256(f"soak-out {task_id} {n}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def staged(
    task_id: int,
    marks: str,
    out_sizes: list[int],
    inputs_dict: dict[str, Any] = {},  # noqa: B006 - Parsl apps take their dicts this way
    outputs_dict: dict[str, Any] = {},  # noqa: B006
) -> tuple[int, str, dict[str, str]]:
    """A staged task: hash the staged-in file, write a directory of files to be staged out.
    Returns its id, the input's SHA-256 and the SHA-256 of each output file by name."""
    digest = sha256_file(inputs_dict["in"]["worker_path"])
    out = outputs_dict["out"]["worker_path"]
    os.makedirs(out, exist_ok=True)
    written = {}
    for n, size in enumerate(out_sizes):
        body = out_body(task_id, n, size)
        with open(os.path.join(out, f"part{n}.bin"), "wb") as f:
            f.write(body)
        written[f"part{n}.bin"] = hashlib.sha256(body).hexdigest()
    mark(marks, task_id)
    return task_id, digest, written
