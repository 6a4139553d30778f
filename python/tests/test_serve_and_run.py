"""`parsl-sidecar serve` and `parsl-sidecar run` as processes, seen from Python."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sidecar_proc import cli_args, running_sidecar, short_tmpdir, start_sidecar

import parsl_sidecar


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    d = short_tmpdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_connection_file_is_replaced(runtime_dir: Path) -> None:
    stale = {
        "endpoint": f"ipc://{runtime_dir}/old.sock",
        "protocol_version": 1,
        "signature_scheme": "hmac-sha256",
        "key": "00" * 32,
        "pid": dead_pid(),
        "started_at": "2020-01-01T00:00:00.000Z",
        "version": "0.0.0",
    }
    cf = runtime_dir / "sidecar.json"
    cf.write_text(json.dumps(stale))
    os.chmod(cf, 0o600)
    (runtime_dir / "sidecar.lock").write_text(f"{stale['pid']}\n")
    with pytest.raises(parsl_sidecar.SidecarUnreachable, match="stale"):
        parsl_sidecar.connect(cf)
    sc = start_sidecar(runtime_dir)
    try:
        with parsl_sidecar.connect(cf) as c:
            assert c.call("sidecar.status")["pid"] == sc.proc.pid
    finally:
        assert sc.stop() == 0


def test_second_serve_on_the_same_runtime_dir_fails(runtime_dir: Path) -> None:
    sc = start_sidecar(runtime_dir)
    try:
        second = subprocess.run(
            cli_args("serve", "--runtime-dir", str(runtime_dir), "--log-level", "warn"),
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert second.returncode == 1, second.stderr
        assert "already running" in second.stderr
        assert "    at " not in second.stderr  # a message, not a stack
        # the first one is untouched
        with parsl_sidecar.connect(sc.connection_file) as c:
            assert c.call("sidecar.status")["pid"] == sc.proc.pid
    finally:
        assert sc.stop() == 0


def test_sigterm_removes_connection_file_and_socket(runtime_dir: Path) -> None:
    sc = start_sidecar(runtime_dir)
    sock = runtime_dir / "sidecar.sock"
    assert sock.exists()
    with parsl_sidecar.connect(sc.connection_file) as c:
        c.call("sidecar.ping")
    assert sc.stop() == 0
    assert not sc.connection_file.exists()
    assert not sock.exists()
    assert not (runtime_dir / "sidecar.lock").exists()


def test_shutdown_method_stops_the_sidecar_cleanly(runtime_dir: Path) -> None:
    sc = start_sidecar(runtime_dir)
    with parsl_sidecar.connect(sc.connection_file) as c:
        assert c.call("sidecar.shutdown", reason="test") == {"ok": True}
    assert sc.proc.wait(timeout=30) == 0
    assert not sc.connection_file.exists()


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
def test_running_sidecar_fixture_exits_zero(transport: str) -> None:
    with running_sidecar(transport) as sc:
        with parsl_sidecar.connect(sc.connection_file) as c:
            assert c.call("sidecar.ping")["pong"]
        assert sc.endpoint.startswith(transport)


CHILD_PING = """
import os, sys, parsl_sidecar
path = os.environ["PARSL_SIDECAR_CONNECTION_FILE"]
with parsl_sidecar.connect() as c:
    st = c.call("sidecar.status")
    assert st["connection_file"] == path, (st, path)
    print(path)
    print(st["pid"])
sys.exit(3)
"""


def run_cli(runtime_dir: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PARSL_SIDECAR_RUNTIME_DIR": str(runtime_dir)}
    env.pop("PARSL_SIDECAR_CONNECTION_FILE", None)
    return subprocess.run(
        cli_args("run", "--", *command),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_run_child_connects_and_exit_code_is_passed_through(runtime_dir: Path) -> None:
    res = run_cli(runtime_dir, sys.executable, "-c", CHILD_PING)
    assert res.returncode == 3, res.stderr
    path, pid = res.stdout.split()
    assert Path(path).parent.parent == runtime_dir
    # the run's sidecar is gone: no connection file, no process
    assert not Path(path).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    assert list(runtime_dir.iterdir()) == []


def test_run_child_killed_by_sigterm_gives_143(runtime_dir: Path) -> None:
    code = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    res = run_cli(runtime_dir, sys.executable, "-c", code)
    assert res.returncode == 128 + signal.SIGTERM, res.stderr
    assert list(runtime_dir.iterdir()) == []


def test_run_command_not_found_gives_127(runtime_dir: Path) -> None:
    res = run_cli(runtime_dir, "parsl-sidecar-no-such-command-xyz")
    assert res.returncode == 127
    assert "not found" in res.stderr and "parsl-sidecar-no-such-command-xyz" in res.stderr
    assert list(runtime_dir.iterdir()) == []


def test_client_of_a_sidecar_that_went_away(runtime_dir: Path) -> None:
    sc = start_sidecar(runtime_dir)
    with parsl_sidecar.connect(sc.connection_file, timeout=1.0) as c:
        sub = c.subscribe(["job"], lambda e: None)
        endpoint = c.endpoint
        assert sc.stop() == 0
        with pytest.raises(parsl_sidecar.SidecarTimeout) as ei:
            c.call("sidecar.ping")
        assert "sidecar.ping" in str(ei.value) and "1 s" in str(ei.value)
        assert endpoint in str(ei.value)
        with pytest.raises(parsl_sidecar.SidecarTimeout):
            c.call_async("sidecar.status").result(30)
        sub.close()  # the unsubscribe times out; closing still succeeds
    assert c._termed
