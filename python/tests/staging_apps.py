"""App bodies for the staging tests; workers import this module (PYTHONPATH)."""

from __future__ import annotations

from typing import Any


def combine(
    inputs_dict: dict[str, Any] = {},  # noqa: B006 - Parsl apps take their dicts this way
    outputs_dict: dict[str, Any] = {},  # noqa: B006
    stdout: str = "std.out",
    stderr: str = "std.err",
) -> str:
    """Bash: concatenate the staged-in files, copy the staged-in directories, hash the result."""
    i = {k: v["worker_path"] for k, v in inputs_dict.items()}
    o = {k: v["worker_path"] for k, v in outputs_dict.items()}
    return "\n".join(
        [
            "set -e",
            f'mkdir -p "$(dirname {o["report"]})" "{o["copy"]}" "$(dirname {o["summary"]})"',
            f"cat {i['pw_file']} {i['s3_file']} {i['gs_file']} > {o['report']}",
            f"cp -r {i['pw_dir']} {o['copy']}/pw",
            f"cp -r {i['s3_dir']} {o['copy']}/s3",
            f"cp -r {i['gs_dir']} {o['copy']}/gs",
            f"sha256sum {o['report']} | cut -c1-64 > {o['summary']}",
        ]
    )


def count(
    dep: Any,
    inputs_dict: dict[str, Any] = {},  # noqa: B006
    outputs_dict: dict[str, Any] = {},  # noqa: B006
) -> int:
    """Python: count the files of a staged-in tree, read a summary, write both out."""
    import os
    import shutil

    tree = inputs_dict["copy"]["worker_path"]
    n = sum(len(files) for _, _, files in os.walk(tree))
    with open(inputs_dict["summary"]["worker_path"]) as f:
        summary = f.read().strip()
    final = outputs_dict["final"]["worker_path"]
    os.makedirs(os.path.dirname(final), exist_ok=True)
    with open(final, "w") as f:
        f.write(f"{n} {summary}\n")
    shutil.copytree(tree, outputs_dict["tree"]["worker_path"], dirs_exist_ok=True)
    return n


def concat(inputs: list[Any] = [], outputs: list[Any] = []) -> int:  # noqa: B006
    """Python: concatenate the inputs' files into the first output (native Parsl Files)."""
    from pathlib import Path

    data = b"".join(Path(f.filepath).read_bytes() for f in inputs)
    with open(outputs[0].filepath, "wb") as out:
        out.write(data)
    return len(data)


def touch(marker: str, inputs_dict: dict[str, Any] = {}, outputs_dict: dict[str, Any] = {}) -> str:  # noqa: B006
    """Bash: create `marker` (to see whether the app ran) and the outputs' files."""
    outs = " ".join(v["worker_path"] for v in outputs_dict.values())
    return f"touch {marker}" + (
        f" && mkdir -p $(dirname {outs}) && echo out > {outs}" if outs else ""
    )


def fail(inputs_dict: dict[str, Any] = {}, outputs_dict: dict[str, Any] = {}) -> str:  # noqa: B006
    """Bash: exit 3."""
    return "exit 3"


def noop(inputs_dict: dict[str, Any] = {}, outputs_dict: dict[str, Any] = {}) -> int:  # noqa: B006
    """Python: nothing (for overhead)."""
    return 0
