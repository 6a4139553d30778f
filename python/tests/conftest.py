"""Fixtures: a real Node sidecar in its own process, over ipc:// or tcp://127.0.0.1."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sidecar_proc import Sidecar, running_sidecar

import parsl_sidecar

# Every process this session starts here inherits it, also once reparented (a leak):
# pools.processes_matching counts only this session's processes, not other runs' on the machine.
os.environ.setdefault("PSC_TEST_SESSION", uuid.uuid4().hex)


@pytest.fixture(scope="module", params=["ipc", "tcp"])
def sidecar(request: pytest.FixtureRequest) -> Iterator[Sidecar]:
    """One real sidecar per test module and transport."""
    with running_sidecar(request.param) as sc:
        yield sc


@pytest.fixture
def client(sidecar: Sidecar) -> Iterator[parsl_sidecar.Client]:
    """A client of the module's sidecar, closed after the test."""
    c = parsl_sidecar.connect(sidecar.connection_file, timeout=30)
    try:
        yield c
    finally:
        c.close()
