"""The Parsl releases parsl_sidecar supports: what differs, and the refusal of older ones.

The whole range is exercised by running the integration tests and Parsl's own tests under the
oldest and the newest release (scripts/parsl-matrix.sh); these check the pieces directly.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from parsl.executors import HighThroughputExecutor
from parsl.providers import SlurmProvider

from parsl_sidecar import ExecutorsError
from parsl_sidecar._parsl_compat import (
    OLDEST_PARSL,
    htex_keywords,
    parsl_version,
    require_supported_parsl,
    slurm_keywords,
    version_tuple,
)

PYTHON_DIR = Path(__file__).resolve().parent.parent


def test_version_tuple() -> None:
    assert version_tuple("2025.06.30") == (2025, 6, 30) == version_tuple("2025.6.30")
    assert version_tuple("2026.10.26+local") == (2026, 10, 26)
    with pytest.raises(ValueError):
        version_tuple("1.2.0")


def test_this_parsl_is_supported_and_older_ones_are_refused() -> None:
    require_supported_parsl()
    require_supported_parsl(OLDEST_PARSL)
    for old in ("2025.06.23", "2024.12.30", "1.2.0"):
        with pytest.raises(ExecutorsError) as e:
            require_supported_parsl(old)
        assert e.value.code == "PARSL_UNSUPPORTED"
        assert f"Parsl {old} is installed here" in str(e.value)
        assert f"needs Parsl {OLDEST_PARSL} or newer" in str(e.value)


def test_htex_keywords_are_this_releases() -> None:
    kw = htex_keywords(label="x", address="127.0.0.1", worker_port=5000)
    assert kw["encrypted"] is True  # not the default before 2026.01.19
    inspect.signature(HighThroughputExecutor).bind(**kw)
    assert htex_keywords(encrypted=False)["encrypted"] is False  # executor_options win


def test_slurm_gpus_and_gres_on_every_release() -> None:
    kw = slurm_keywords(
        {"partition": "p", "gpus_per_node": 2, "gres": "gpu:a100:2", "scheduler_options": "#X"}
    )
    inspect.signature(SlurmProvider).bind(**kw)  # every keyword is one this release takes
    if "gres" in inspect.signature(SlurmProvider).parameters:
        assert kw["gpus_per_node"] == 2 and kw["gres"] == "gpu:a100:2"
    else:  # before 2026.02.23: the lines newer releases write
        assert "gres" not in kw and "gpus_per_node" not in kw
        assert kw["scheduler_options"] == (
            "#X\n#SBATCH --gpus-per-node=2\n#SBATCH --gres=gpu:a100:2\n"
        )
    assert slurm_keywords({"partition": "p"}) == {"partition": "p"}


@pytest.mark.timeout(300)
def test_parsl_config_refuses_an_older_parsl(tmp_path: Path) -> None:
    """A real Parsl 2025.06.23 (the last with two worker ports): parsl_config says what to do."""
    old = "2025.6.23"
    venv = Path(f"/tmp/psc-venv-py{sys.version_info[0]}.{sys.version_info[1]}-parsl-{old}")
    py = venv / "bin" / "python"
    uv = Path(sys.executable).parent / "uv"
    if not py.exists():
        subprocess.run([str(uv), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
        r = subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(py), f"parsl=={old}", "msgpack"],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            pytest.skip(f"SKIPPED LOUDLY: cannot build {venv} from PyPI: {r.stderr}")
    code = (
        "import parsl_sidecar\n"
        "try:\n"
        "    parsl_sidecar.parsl_config('nowhere.json')\n"
        "except parsl_sidecar.ExecutorsError as e:\n"
        "    print(e.code, e)\n"
    )
    r = subprocess.run(
        [str(py), "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PYTHON_DIR)},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("PARSL_UNSUPPORTED Parsl 2025.06.23 is installed here")
    assert f"pip install 'parsl>={OLDEST_PARSL}'" in r.stdout
    assert parsl_version()  # and this process's Parsl went through (above)


def test_pyproject_names_the_same_oldest_parsl() -> None:
    """The parsl extra's lower bound is the release require_supported_parsl accepts first."""
    text = (PYTHON_DIR / "pyproject.toml").read_text()
    oldest = ".".join(str(n) for n in version_tuple(OLDEST_PARSL))
    assert f'parsl = ["parsl>={oldest}"]' in text
