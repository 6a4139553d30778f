"""``pytest --config`` file for Parsl's own tests: the sidecar's Config for a loopback pool.

matrix_parsl_suite.py starts the pool (a real sshd on loopback) and the sidecar and names them
in ``PARSL_SIDECAR_EXECUTORS`` and ``PARSL_SIDECAR_CONNECTION_FILE``; Parsl's conftest calls
``fresh_config()`` once for the session, as it does with its own ``configs/htex_local.py``.
"""

from __future__ import annotations

import os

from parsl.config import Config

from parsl_sidecar import parsl_config


def fresh_config() -> Config:
    # strategy "none" as htex_local.py: the one block stays for the whole session
    return parsl_config(os.environ["PARSL_SIDECAR_EXECUTORS"], strategy="none")
