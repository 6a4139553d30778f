"""A sidecar that starts itself: ``connect()`` with none running and none named starts one owned
by the calling process, which stops with it (exit or SIGKILL); autostart off refuses; a running
sidecar is used as before. Each owner is a real Python process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pools import processes_matching
from sidecar_proc import CLI, cli_args, short_tmpdir, start_sidecar, wait_until

import parsl_sidecar
from parsl_sidecar.autostart import sidecar_command

NAMED = ("PARSL_SIDECAR_CONNECTION_FILE", "PARSL_SIDECAR_JOB", "PARSL_SIDECAR_AUTOSTART")

# the owner: connects twice, says what it got, then waits for stdin to close (or to be killed)
OWNER = textwrap.dedent(
    """
    import json, sys, time
    import parsl_sidecar
    t = time.monotonic()
    c = parsl_sidecar.connect()
    c.call("sidecar.ping")
    first = time.monotonic() - t
    again = parsl_sidecar.connect()
    owned = parsl_sidecar.autostart.owned_sidecar()
    print(json.dumps({"pid": c.info.pid, "again": again.info.pid, "file": c.info.path,
                      "owned": owned.proc.pid if owned else None, "first_call_s": first}),
          flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = short_tmpdir("psc-auto-")
    monkeypatch.setenv("PARSL_SIDECAR_RUNTIME_DIR", str(d))
    for name in NAMED:
        monkeypatch.delenv(name, raising=False)
    yield d
    for line in processes_matching(str(d)):
        os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    subprocess.run(["rm", "-rf", str(d)], check=False)


def start_owner(extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], dict]:
    env = {**os.environ, **(extra_env or {})}
    p = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line, f"the owner exited with {p.wait()}"
    return p, json.loads(line)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_command_prefers_an_installed_parsl_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    node = shutil.which("node")
    assert node is not None
    bindir = short_tmpdir("psc-bin-")
    venv = short_tmpdir("psc-venv-")
    try:
        python = str(venv / "python")  # an interpreter with no parsl-sidecar beside it
        monkeypatch.setenv("PATH", os.path.dirname(node))
        # no parsl-sidecar installed: the checkout's build through node
        assert sidecar_command(python) == [node, "--max-semi-space-size=8", str(CLI)]
        (bindir / "parsl-sidecar").write_text("#!/bin/sh\n")
        (bindir / "parsl-sidecar").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bindir}:{os.path.dirname(node)}")
        assert sidecar_command(python) == [str(bindir / "parsl-sidecar")]
        # the console script of the interpreter's own environment wins over PATH
        (venv / "parsl-sidecar").write_text("#!/bin/sh\n")
        (venv / "parsl-sidecar").chmod(0o755)
        assert sidecar_command(python) == [str(venv / "parsl-sidecar")]
    finally:
        subprocess.run(["rm", "-rf", str(bindir), str(venv)], check=False)


def test_starts_one_owned_sidecar_and_stops_it_at_exit(runtime: Path) -> None:
    p, got = start_owner()
    assert got["pid"] == got["again"] == got["owned"]  # one sidecar, used by every connect()
    assert got["pid"] != p.pid and alive(got["pid"])
    assert Path(got["file"]).parent.parent == runtime
    # Node runs with the flags of the bin's shebang, which `node FILE` would skip
    assert "--max-semi-space-size=8" in Path(f"/proc/{got['pid']}/cmdline").read_text().split("\0")
    print(f"time to first call with autostart: {got['first_call_s']:.3f} s")
    p.communicate("", timeout=60)  # stdin closed: the owner exits normally (atexit)
    assert p.returncode == 0
    assert not alive(got["pid"])  # stopped before the owner finished exiting
    assert list(runtime.iterdir()) == []  # its runtime directory removed


def test_a_sigkilled_owner_takes_its_sidecar_with_it(runtime: Path) -> None:
    p, got = start_owner()
    p.kill()
    p.wait()
    t = time.monotonic()
    wait_until(lambda: not alive(got["pid"]), "the sidecar to notice its owner was killed", 10)
    print(f"sidecar gone {time.monotonic() - t:.3f} s after its owner was SIGKILLed")
    assert not Path(got["file"]).exists()
    assert processes_matching(str(runtime)) == []
    # the next owner sweeps the directory the killed one could not remove
    p2, got2 = start_owner()
    assert [d.name for d in runtime.iterdir()] == [Path(got2["file"]).parent.name]
    p2.communicate("", timeout=60)


def test_autostart_off_refuses_saying_how_to_start_one(runtime: Path) -> None:
    for kwargs, env in (({"autostart": False}, None), ({}, "0"), ({}, "false")):
        if env is not None:
            os.environ["PARSL_SIDECAR_AUTOSTART"] = env
        try:
            with pytest.raises(parsl_sidecar.SidecarUnreachable) as ei:
                parsl_sidecar.connect(**kwargs)
        finally:
            os.environ.pop("PARSL_SIDECAR_AUTOSTART", None)
        assert ei.value.code == "UNREACHABLE"
        msg = str(ei.value)
        assert "parsl-sidecar serve --detach" in msg and "PARSL_SIDECAR_AUTOSTART=0" in msg
    assert list(runtime.iterdir()) == []  # nothing was started


def test_a_running_sidecar_is_used_as_before(runtime: Path) -> None:
    detached = subprocess.run(
        cli_args("serve", "--detach"), capture_output=True, text=True, timeout=60, check=True
    )
    file = detached.stdout.strip()
    try:
        pid = parsl_sidecar.connection.read_connection_file(file).pid
        p, got = start_owner()
        assert got["pid"] == pid and got["owned"] is None
        p.communicate("", timeout=60)
        assert alive(pid)  # not the owner's: it keeps running
        # one named by the environment, even with a default one running
        other = short_tmpdir("psc-named-")
        sc = start_sidecar(other)
        try:
            env = {"PARSL_SIDECAR_CONNECTION_FILE": str(sc.connection_file)}
            p, got = start_owner(env)
            assert got["pid"] == sc.proc.pid and got["owned"] is None
            p.communicate("", timeout=60)
        finally:
            assert sc.stop() == 0
            subprocess.run(["rm", "-rf", str(other)], check=False)
    finally:
        subprocess.run(cli_args("stop"), capture_output=True, timeout=60, check=False)


def test_a_named_sidecar_that_is_gone_is_not_replaced(runtime: Path) -> None:
    with pytest.raises(parsl_sidecar.SidecarUnreachable, match=r"nope\.json"):
        parsl_sidecar.connect(runtime / "nope.json")
    os.environ["PARSL_SIDECAR_CONNECTION_FILE"] = str(runtime / "env.json")
    try:
        with pytest.raises(parsl_sidecar.SidecarUnreachable, match=r"env\.json"):
            parsl_sidecar.connect()
    finally:
        del os.environ["PARSL_SIDECAR_CONNECTION_FILE"]
    assert list(runtime.iterdir()) == []
