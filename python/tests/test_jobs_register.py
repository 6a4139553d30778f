"""Scheduler jobs submitted by the remote providers are recorded with the sidecar's job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sidecar_proc import cli_args, short_tmpdir

CHILD = """
from parsl_sidecar.providers import SidecarSlurmProvider
p = SidecarSlurmProvider("local", label="cpu")
p._record_job("4242", "slurm")
p._record_job("4243", "slurm")
print("recorded")
"""


@pytest.fixture
def dirs() -> Iterator[Path]:
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_submitted_slurm_jobs_land_in_the_job_record(dirs: Path) -> None:
    env = {
        **os.environ,
        "PARSL_SIDECAR_RUNTIME_DIR": str(dirs / "rt"),
        "PARSL_SIDECAR_STATE_DIR": str(dirs / "state"),
    }
    env.pop("PARSL_SIDECAR_JOB", None)
    env.pop("PARSL_SIDECAR_CONNECTION_FILE", None)
    res = subprocess.run(
        cli_args("run", "--job", "pyreg", "--", sys.executable, "-c", CHILD),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "recorded"
    record = json.loads((dirs / "state" / "jobs" / "pyreg.json").read_text())
    assert record["state"] == "succeeded"
    assert record["pools"] == ["local"]
    jobs = [r for r in record["resources"] if r["kind"] == "scheduler_job"]
    assert [(r["scheduler"], r["id"], r["target"], r["label"]) for r in jobs] == [
        ("slurm", "4242", "local", "cpu"),
        ("slurm", "4243", "local", "cpu"),
    ]
    # the teardown asked the pool's watchdog to cancel both in one scancel
    remote = record["cleanup"]["remote"]
    assert remote == [
        {"target": "local", "groups": 0, "processes": 0, "slurm": 2, "pbspro": 0, "left": 0}
    ]
