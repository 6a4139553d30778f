"""parsl_sidecar: the Python side of parsl-sidecar.

Talks to the sidecar daemon (``parsl-sidecar serve`` / ``parsl-sidecar run``) over its signed
ZeroMQ RPC::

    import parsl_sidecar

    with parsl_sidecar.connect() as client:
        client.call("sidecar.ping")
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from .client import Client, Event, Subscription, connect
from .connection import ConnectionInfo, default_runtime_dir, resolve_connection_file
from .decorators import StagingSpecError, log_app, stage_app
from .errors import (
    ERROR_CODES,
    AlreadyRunning,
    EnvError,
    ExecutorsError,
    InvalidParams,
    JobError,
    ShuttingDown,
    SidecarError,
    SidecarTimeout,
    SidecarUnreachable,
    SSHError,
    StagingError,
    TunnelError,
    UnknownMethod,
    VersionMismatch,
)
from .prompts import Prompt

try:
    # the distribution's, which setup.py takes from package.json: one version for npm and PyPI
    __version__ = _metadata.version("parsl-sidecar")
except _metadata.PackageNotFoundError:  # imported from a checkout that was not installed
    __version__ = "0.0.0"

__all__ = [
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


def __getattr__(name: str) -> Any:
    # parsl_config and SidecarStaging import Parsl (an optional dependency): load on first use
    if name == "parsl_config":
        from .config import parsl_config

        return parsl_config
    if name == "SidecarStaging":
        from .staging import SidecarStaging

        return SidecarStaging
    raise AttributeError(f"module 'parsl_sidecar' has no attribute {name!r}")
