"""The Python side of the test bed: ``testbed_up`` starts servers and stops them on exit."""

from __future__ import annotations

import subprocess

import pytest
from testbed import testbed_up


def _alive(pid: int) -> bool:
    return subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0


@pytest.mark.timeout(60)
def test_sshd_up_and_down() -> None:
    with testbed_up("sshd", extra_config=["MaxStartups 30"]) as sshd:
        assert sshd["kind"] == "sshd"
        out = subprocess.run(
            ["ssh", *sshd["sshArgs"], "echo ok"], capture_output=True, text=True, timeout=30
        )
        assert out.stdout.strip() == "ok", out.stderr
        pid = sshd["pid"]
        assert _alive(pid)
    assert not _alive(pid)
