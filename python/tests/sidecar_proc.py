"""A real Node sidecar (`parsl-sidecar serve`) in its own process, for tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import parsl_sidecar

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / "dist" / "bin" / "parsl-sidecar.js"


def cli_args(*args: str) -> list[str]:
    """The command line that runs the built parsl-sidecar CLI."""
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `bash scripts/setup.sh` first to build the sidecar")
    return ["node", str(CLI), *args]


def short_tmpdir(prefix: str = "psc-") -> Path:
    """A private temporary directory with a short path (ipc:// paths are limited to ~100 chars)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@dataclass
class Sidecar:
    """A running `parsl-sidecar serve` process."""

    proc: subprocess.Popen[bytes]
    runtime_dir: Path
    connection_file: Path
    stderr_path: Path

    @property
    def endpoint(self) -> str:
        return parsl_sidecar.connection.read_connection_file(self.connection_file).endpoint

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail(f"sidecar did not stop on SIGTERM within 30 s; stderr:\n{self.stderr()}")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``check`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def wait_for_file(path: Path, proc: subprocess.Popen[bytes], stderr: Path) -> None:
    """Wait until ``path`` names ``proc`` as its pid (the sidecar published it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = stderr.read_text(errors="replace")
            pytest.fail(f"sidecar exited with {proc.returncode} at start:\n{out}")
        with contextlib.suppress(parsl_sidecar.SidecarError):
            if parsl_sidecar.connection.read_connection_file(path).pid == proc.pid:
                return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"sidecar did not publish {path} within 30 s")


def start_sidecar(
    runtime_dir: Path, transport: str = "ipc", *extra: str, env: dict[str, str] | None = None
) -> Sidecar:
    """Start `parsl-sidecar serve` on ``runtime_dir`` and wait for its connection file.

    ``env`` is added to this process's environment for it (e.g. its RPC limits).
    """
    args = ["serve", "--runtime-dir", str(runtime_dir), "--log-level", "warn", *extra]
    if transport == "tcp":
        args += ["--endpoint", "tcp://127.0.0.1:*"]
    stderr_path = Path(tempfile.mkstemp(prefix="psc-stderr-", dir="/tmp")[1])
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            cli_args(*args),
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env={**os.environ, **env} if env else None,
        )
    connection_file = runtime_dir / "sidecar.json"
    wait_for_file(connection_file, proc, stderr_path)
    return Sidecar(proc, runtime_dir, connection_file, stderr_path)


@contextlib.contextmanager
def running_sidecar(transport: str = "ipc", env: dict[str, str] | None = None) -> Iterator[Sidecar]:
    """A sidecar for the duration of a with block; asserts a clean exit 0 at the end."""
    runtime_dir = short_tmpdir()
    sc = start_sidecar(runtime_dir, transport, env=env)
    try:
        yield sc
    finally:
        code = sc.stop()
        out = sc.stderr()
        left = sorted(p.name for p in runtime_dir.iterdir())
        shutil.rmtree(runtime_dir, ignore_errors=True)
        os.unlink(sc.stderr_path)
        assert code == 0, f"sidecar exited with {code}; stderr:\n{out}"
        assert "sidecar.json" not in left and "sidecar.sock" not in left, left
