"""Start test bed servers (sshd, login nodes, S3, GCS, Slurm, namespaces) from Python tests.

Launches ``test/testbed/cli.ts up KIND`` with the repository's tsx, reads the one JSON line it
prints, and stops everything by closing its stdin when the context exits.

Example
-------
>>> with testbed_up("sshd") as sshd:                      # doctest: +SKIP
...     subprocess.run(["ssh", *sshd["sshArgs"], "true"], check=True)

As a pytest fixture::

    @pytest.fixture(scope="session")
    def sshd():
        with testbed_up("sshd") as info:
            yield info
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["REPO_ROOT", "TestbedError", "testbed_up"]

REPO_ROOT = Path(__file__).resolve().parents[2]
_CLI = REPO_ROOT / "test" / "testbed" / "cli.ts"
_TSX = REPO_ROOT / "node_modules" / ".bin" / "tsx"


class TestbedError(RuntimeError):
    """The test bed CLI failed to start the requested servers."""

    __test__ = False  # not a test class, despite the name


def _cli_args(kind: str, opts: dict[str, Any]) -> list[str]:
    args = [str(_TSX), str(_CLI), "up", kind, "--json"]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, (list, tuple)):
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    return args


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    if reader.is_alive() or not box or not box[0]:
        return ""
    return box[0]


# The sshd ports this test session started: processes that came in through them are this
# session's (pools.processes_matching), whatever else shares the machine.
OUR_SSHD_PORTS: set[int] = set()


def _note_ports(info: Any) -> None:
    if isinstance(info, dict):
        port = info.get("port")
        if isinstance(port, int) and "user" in info and "host" in info:
            OUR_SSHD_PORTS.add(port)
        for v in info.values():
            _note_ports(v)


@contextmanager
def testbed_up(kind: str, *, start_timeout: float = 60.0, **opts: Any) -> Iterator[dict[str, Any]]:
    """Start test bed servers of ``kind`` and yield their description.

    Parameters
    ----------
    kind
        ``"sshd"``, ``"s3"``, ``"gcs"``, ``"slurm"``, ``"topology"``, or a login node:
        ``"cert"`` (certificates only), ``"otp"`` (key, then a TOTP code; root) or
        ``"proxycommand"`` (behind a jump host; root, namespaces).
    start_timeout
        Seconds to wait for the JSON line.
    **opts
        CLI options: ``extra_config=["GatewayPorts yes"]`` becomes ``--extra-config ...``,
        ``slurm=True`` becomes ``--slurm``.

    Yields
    ------
    dict
        The JSON the CLI printed (see docs/testbed.md for the fields of each kind).
    """
    if not _TSX.exists():
        raise TestbedError(f"{_TSX} not found: run `npm ci` in {REPO_ROOT}")
    proc = subprocess.Popen(
        _cli_args(kind, opts),
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    try:
        line = _read_line(proc, start_timeout)
        if not line:
            code = proc.poll()
            raise TestbedError(f"testbed {kind} did not start (exit code {code}); see stderr")
        info = json.loads(line)
        _note_ports(info)
        yield info
    finally:
        _shutdown(proc)


testbed_up.__test__ = False  # type: ignore[attr-defined]  # pytest: not a test


def _shutdown(proc: subprocess.Popen[str]) -> None:
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    finally:
        if proc.stdout:
            proc.stdout.close()
