"""Snapshot of the public names of parsl_sidecar: change it on purpose, never by accident."""

from __future__ import annotations

import parsl_sidecar

EXPECTED = [
    "ERROR_CODES",
    "AlreadyRunning",
    "Client",
    "ConnectionInfo",
    "EnvError",
    "Event",
    "ExecutorsError",
    "InvalidParams",
    "JobError",
    "Prompt",
    "SSHError",
    "ShuttingDown",
    "SidecarError",
    "SidecarStaging",
    "SidecarTimeout",
    "SidecarUnreachable",
    "StagingError",
    "StagingSpecError",
    "Subscription",
    "TunnelError",
    "UnknownMethod",
    "VersionMismatch",
    "__version__",
    "connect",
    "default_runtime_dir",
    "log_app",
    "parsl_config",
    "resolve_connection_file",
    "stage_app",
]


def test_public_api() -> None:
    assert sorted(parsl_sidecar.__all__) == sorted(EXPECTED)


def test_every_public_name_exists() -> None:
    for name in parsl_sidecar.__all__:
        assert hasattr(parsl_sidecar, name), name


def test_version_matches_the_node_package() -> None:
    import json
    from pathlib import Path

    pkg = json.loads((Path(__file__).resolve().parents[2] / "package.json").read_text())
    assert parsl_sidecar.__version__ == pkg["version"]
