"""A small Parsl workflow that test_login_nodes.py runs through
``parsl-sidecar run --executors FILE -- python login_workflow.py LABEL HERE POOL_DIR``.

On the executor LABEL (the pool behind a login node) it runs plain python_apps, and one
``stage_app`` app that gets a file staged in from HERE (file://, this machine) and stages a
file and a directory out to HERE. It checks what came back and exits 0, printing one line
``RESULT {json}`` with what the test checks further (the workers' network namespace).

With ``$LOGIN_WORKFLOW_PAUSE`` (a directory) it first submits slow apps, creates ``paused`` there
and waits for ``go``, so that the test can break the SSH connection while they are in flight.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import parsl
from parsl.app.app import python_app

from parsl_sidecar import parsl_config, stage_app


def square(x: int) -> tuple[int, str]:
    """x*x and the worker's network namespace (differs from here behind a ProxyCommand)."""
    import os

    return x * x, os.readlink("/proc/self/ns/net")


def slow_square(x: int) -> int:
    """x*x after a second: still running when the test breaks the connection."""
    import time

    time.sleep(1)
    return x * x


def pause_here(pause: Path) -> None:
    (pause / "paused").touch()
    deadline = time.monotonic() + 60
    while not (pause / "go").exists():
        assert time.monotonic() < deadline, "no go from the test within 60 s"
        time.sleep(0.05)


def transform(
    inputs_dict: dict[str, Any] = {},  # noqa: B006 - Parsl apps take their dicts this way
    outputs_dict: dict[str, Any] = {},  # noqa: B006
) -> int:
    """Upper-case the staged-in file into a file, and split its lines into a directory."""
    import os

    with open(inputs_dict["source"]["worker_path"]) as f:
        text = f.read()
    report = outputs_dict["report"]["worker_path"]
    os.makedirs(os.path.dirname(report), exist_ok=True)
    with open(report, "w") as f:
        f.write(text.upper())
    lines = outputs_dict["lines"]["worker_path"]
    os.makedirs(os.path.join(lines, "sub"), exist_ok=True)
    for i, line in enumerate(text.splitlines()):
        with open(os.path.join(lines, "sub" if i % 2 else "", f"{i}.txt"), "w") as f:
            f.write(line + "\n")
    return len(text)


def main(label: str, here: Path, pool_dir: str) -> dict[str, Any]:
    source = here / "source.txt"
    text = "".join(f"line {i} of the login-node workflow\n" for i in range(5))
    source.write_text(text)
    sq = python_app(square, executors=[label])
    staged = stage_app(label)(python_app(transform, executors=[label]))
    pause = os.environ.get("LOGIN_WORKFLOW_PAUSE")
    with parsl.load(parsl_config(run_dir=str(here / "runinfo"))):
        results = [sq(i).result(timeout=120) for i in range(8)]
        if pause:
            slow = [python_app(slow_square, executors=[label])(i) for i in range(4)]
            pause_here(Path(pause))
            assert [f.result(timeout=120) for f in slow] == [0, 1, 4, 9]
            results += [sq(i).result(timeout=120) for i in range(8, 12)]
        n = staged(
            inputs_dict={
                "source": {
                    "type": "file",
                    "global_path": f"file://{source}",
                    "worker_path": f"{pool_dir}/in/source.txt",
                }
            },
            outputs_dict={
                "report": {
                    "type": "file",
                    "global_path": f"file://{here}/out/report.txt",
                    "worker_path": f"{pool_dir}/out/report.txt",
                },
                "lines": {
                    "type": "directory",
                    "global_path": f"file://{here}/out/lines",
                    "worker_path": f"{pool_dir}/out/lines",
                },
            },
        ).result(timeout=120)
    parsl.clear()
    assert [r[0] for r in results] == [i * i for i in range(len(results))], results
    assert n == len(text), n
    assert (here / "out" / "report.txt").read_text() == text.upper()
    lines = sorted(
        p.relative_to(here / "out" / "lines") for p in (here / "out/lines").rglob("*.txt")
    )
    assert [str(p) for p in lines] == ["0.txt", "2.txt", "4.txt", "sub/1.txt", "sub/3.txt"], lines
    assert (here / "out/lines/sub/3.txt").read_text() == "line 3 of the login-node workflow\n"
    return {
        "worker_netns": sorted({r[1] for r in results}),
        "here_netns": os.readlink("/proc/self/ns/net"),
        "job": os.environ["PARSL_SIDECAR_JOB"],
    }


if __name__ == "__main__":
    out = main(sys.argv[1], Path(sys.argv[2]), sys.argv[3])
    print("RESULT", json.dumps(out), flush=True)
