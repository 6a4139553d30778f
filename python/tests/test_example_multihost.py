"""examples/multihost runs as its README says: two loopback pools, one workflow, nothing left."""

from __future__ import annotations

import glob
import subprocess

import pytest
from pools import processes_matching
from testbed import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
def test_multihost_example_runs() -> None:
    before = set(glob.glob("/tmp/multihost-*"))
    r = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "multihost" / "run.sh"), "12"],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "multihost OK" in r.stdout
    # both pools are this machine (one home): each keeps its own watchdog for the whole run
    assert "watchdog was lost" not in r.stderr, r.stderr[-3000:]
    assert '"n": 12' in r.stdout
    assert set(glob.glob("/tmp/multihost-*")) == before
    assert processes_matching("process_worker_pool") == []
