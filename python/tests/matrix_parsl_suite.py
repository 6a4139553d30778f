"""Parsl's own tests through the sidecar, beside the same tests on a local HighThroughputExecutor.

The tests shipped inside the installed parsl package (test_python_apps, test_bash_apps,
test_error_handling, test_staging) run twice with ``pytest --config FILE``: with Parsl's
``configs/htex_local.py``, then with parsl_suite_config.py (the sidecar's Config for a loopback
pool over a real sshd). Every test the local run passes must pass through the sidecar.

Not collected by the ordinary run (the name does not start with ``test_``): scripts/parsl-matrix.sh
names this file, in a virtual environment per Parsl release with pytest < 9 (Parsl's conftest
uses a hook argument pytest 9 removed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import parsl
import pytest
from pools import Pools, processes_matching, running_pools, wait_for

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
PARSL_DIR = Path(parsl.__file__).resolve().parent
SUITES = ["test_python_apps", "test_bash_apps", "test_error_handling", "test_staging"]
# as Parsl's own CI: cleannet needs FTP/HTTP servers on the internet; the permission tests
# expect writes to /bad/dir to fail, which root's succeed (and leave /bad behind)
MARKERS = "not cleannet and not unix_filesystem_permissions_required"


def run_suite(config: Path, cwd: Path, env: dict[str, str]) -> tuple[dict[str, str], float]:
    """Parsl's tests under ``config``: ``{test id: passed|failed|skipped}`` and seconds."""
    cwd.mkdir(parents=True, exist_ok=True)
    junit = cwd / "junit.xml"
    t0 = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            # Parsl's conftest (the --config option) lives in parsl/tests: use it, not ours
            f"--confcutdir={PARSL_DIR}",
            f"--rootdir={PARSL_DIR}",
            "-c",
            os.devnull,
            *(str(PARSL_DIR / "tests" / s) for s in SUITES),
            "--config",
            str(config),
            "-m",
            MARKERS,
            "--timeout=300",
            "-q",
            f"--junitxml={junit}",
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    elapsed = time.monotonic() - t0
    (cwd / "pytest.out").write_text(r.stdout + r.stderr)
    assert junit.exists(), f"pytest --config {config} left no report:\n{r.stdout}{r.stderr}"
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            outcomes[name] = "failed"
        elif "skipped" in kinds:
            outcomes[name] = "skipped"
        else:
            outcomes[name] = "passed"
    return outcomes, elapsed


def counts(outcomes: dict[str, str]) -> str:
    n = {k: sum(1 for v in outcomes.values() if v == k) for k in ("passed", "failed", "skipped")}
    return f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped"


@pytest.fixture(scope="module")
def pool() -> Iterator[Pools]:
    with running_pools("parsl_suite") as p:
        yield p


@pytest.mark.timeout(3000)
def test_parsl_own_tests_pass_through_the_sidecar_as_locally(
    pool: Pools, capsys: pytest.CaptureFixture[str]
) -> None:
    # Parsl's htex_local starts interchange.py and process_worker_pool.py from PATH
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    local, t_local = run_suite(PARSL_DIR / "tests/configs/htex_local.py", pool.tmp / "local", env)

    run_dir = pool.tmp / "pools" / "parsl_suite"
    cwd = pool.tmp / "sidecar"
    executors = pool.write_executors(
        {
            "htex_sidecar": {
                **pool.entry("parsl_suite"),
                # as htex_local.py: a worker per core
                "MAX_WORKERS_PER_NODE": os.cpu_count() or 1,
                "WORKER_LOGDIR_ROOT": str(run_dir / "logs"),
                # the pool shares this filesystem: its workers start where the tests run, as
                # local workers do (the shared_fs tests write relative paths and read them here)
                "WORKER_INIT": f"cd {cwd}",
            }
        }
    )
    sidecar_env = {
        **env,
        "PARSL_SIDECAR_EXECUTORS": str(executors),
        "PARSL_SIDECAR_CONNECTION_FILE": str(pool.sidecar.connection_file),
    }
    through, t_sidecar = run_suite(HERE / "parsl_suite_config.py", cwd, sidecar_env)

    report = (
        f"Parsl {parsl.__version__}, Python {sys.version.split()[0]}: "
        f"local HTEX {counts(local)} in {t_local:.0f} s; "
        f"through the sidecar {counts(through)} in {t_sidecar:.0f} s"
    )
    with capsys.disabled():  # the figures, in CI's log whatever the outcome
        print(f"\n{report}")
    assert sum(1 for v in local.values() if v == "passed") > 50, report
    lost = {t: through.get(t, "not run") for t, v in local.items() if v == "passed"}
    lost = {t: v for t, v in lost.items() if v != "passed"}
    out = (pool.tmp / "sidecar" / "pytest.out").read_text()
    assert not lost, f"{report}\npassed locally, not through the sidecar: {lost}\n{out[-8000:]}"
    # the sidecar's run left no worker behind (Parsl's cleanup cancelled the block)
    wait_for(
        lambda: not [p for p in processes_matching("process_worker_pool") if str(run_dir) in p],
        "the pool's workers to end",
        timeout=60,
    )
