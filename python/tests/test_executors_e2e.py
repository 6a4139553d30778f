"""End to end: real Parsl, a real sidecar, real sshd pools on loopback, real tunnels."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import parsl
import pytest
from parsl.data_provider.files import File
from parsl.jobs.states import JobState
from pools import (
    Pools,
    kill_ssh_sessions,
    port_taken,
    processes_matching,
    running_pools,
    start_port_taker,
    wait_for,
    wait_for_port_move,
)
from sidecar_proc import cli_args

import parsl_sidecar
from parsl_sidecar import ExecutorsError, parsl_config
from parsl_sidecar._block_errors import tolerate_single_failures

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent


def pool_entry(pools: Pools, alias: str, **extra: Any) -> dict[str, Any]:
    init = f"export POOL_NAME={alias}; export PYTHONPATH={TESTS}"
    return pools.entry(alias, WORKER_INIT=init, **extra)


def tunnels(pools: Pools) -> list[dict[str, Any]]:
    with pools.client() as c:
        res = c.call("tunnels.list")
    items: list[dict[str, Any]] = res["tunnels"] if isinstance(res, dict) else res
    return [t for t in items if t.get("state") not in ("closed",)]


def blocks(pools: Pools) -> list[dict[str, Any]]:
    with pools.client() as c:
        out: list[dict[str, Any]] = c.call("executors.blocks.list")["blocks"]
    return out


@pytest.fixture(scope="module")
def two_pools() -> Any:
    with running_pools("pool_a", "pool_b") as p:
        yield p


@pytest.mark.timeout(600)
def test_two_pools_many_apps(two_pools: Pools) -> None:
    pools = two_pools
    path = pools.write_executors(
        {"exec_a": pool_entry(pools, "pool_a"), "exec_b": pool_entry(pools, "pool_b")}
    )

    import e2e_apps

    client = pools.client()
    cfg = parsl_config(path, client=client, run_dir=str(pools.tmp / "runinfo"))
    owner = parsl_sidecar.config.default_owner()
    assert [e.label for e in cfg.executors] == ["exec_a", "exec_b"]
    # a lost block is replaced, not fatal (parsl_sidecar/_block_errors.py)
    assert all(e.block_error_handler is tolerate_single_failures for e in cfg.executors)
    for e in cfg.executors:
        assert e.address == "127.0.0.1"
        assert e.encrypted is True
    outdir = pools.tmp / "out"
    outdir.mkdir()
    with parsl.load(cfg):
        apps = ("exec_a", "exec_b")
        sq = {x: parsl.python_app(e2e_apps.square, executors=[x]) for x in apps}
        echo = {x: parsl.bash_app(e2e_apps.echo_pool, executors=[x]) for x in apps}
        py = [sq["exec_a" if i % 2 else "exec_b"](i) for i in range(120)]
        sh = [
            echo["exec_a" if i % 2 else "exec_b"](i, outputs=[File(str(outdir / f"{i}.txt"))])
            for i in range(100)
        ]
        results = [f.result(timeout=300) for f in py]
        for f in sh:
            assert f.result(timeout=300) == 0
    parsl.clear()
    assert [r[0] for r in results] == [i * i for i in range(120)]
    assert [r[1] for r in results] == ["pool_a" if i % 2 else "pool_b" for i in range(120)]
    written = {int(p.stem): p.read_text().split() for p in outdir.iterdir()}
    assert len(written) == 100
    assert Counter(v[0] for v in written.values()) == {"pool_a": 50, "pool_b": 50}
    assert all(int(v[1]) == k for k, v in written.items())
    # the workers' blocks ended with the DFK; releasing the owner closes the tunnels
    assert all(b["state"] != "running" for b in blocks(pools))
    with pools.client() as c:
        c.call("executors.release", owner=owner)
    assert tunnels(pools) == []
    assert processes_matching("process_worker_pool") == []
    client.close()


@pytest.mark.timeout(600)
def test_drops_mid_workflow_lose_nothing(two_pools: Pools) -> None:
    """Worker tunnels are durable: every SSH connection to both pools killed while tasks and
    results are in flight, twice, loses none of them, and the workflow finishes with every
    result. Before durable tunnels one such drop could hang a workflow for ever: the bytes of a
    task or result died with the channel, and the interchange kept waiting for them from a
    manager that reconnected and heartbeated (docs/tunnels.md, "Durable tunnels")."""
    pools = two_pools
    path = pools.write_executors(
        {"exec_a": pool_entry(pools, "pool_a"), "exec_b": pool_entry(pools, "pool_b")},
        "drops.json",
    )

    import e2e_apps

    owner = "test-drops"
    client = pools.client()
    cfg = parsl_config(path, client=client, owner=owner, run_dir=str(pools.tmp / "ri-drops"))
    listeners = [int(pools.sshds[a]["pid"]) for a in ("pool_a", "pool_b")]
    n = 4000
    killed = 0
    try:
        with parsl.load(cfg):
            sq = {x: parsl.python_app(e2e_apps.square, executors=[x]) for x in ("exec_a", "exec_b")}
            futs = [sq["exec_a" if i % 2 else "exec_b"](i) for i in range(n)]
            for at in (n // 5, n // 2):
                wait_for(
                    lambda at=at: sum(f.done() for f in futs) >= at,
                    f"{at} results before the drop",
                    timeout=300,
                )
                killed += sum(kill_ssh_sessions(pid) for pid in listeners)
            results = [f.result(timeout=300) for f in futs]
        parsl.clear()
        assert killed > 0
        assert [r[0] for r in results] == [i * i for i in range(n)]
        assert Counter(r[1] for r in results) == {"pool_a": n // 2, "pool_b": n // 2}
        worker = [t for t in tunnels(pools) if t["label"] in ("exec_a", "exec_b")]
        assert len(worker) == 2, worker
        for t in worker:
            assert t["durable"] is True and t["reach"] == "relay", t
            assert t["reconnects"] >= 1, t
            assert t["cut_in_flight"] == 0, t
        # the managers' connections were carried across the drops, not reconnected
        assert sum(t["resumed_connections"] for t in worker) >= 2, worker
    finally:
        client.call("executors.release", owner=owner)
        client.close()
    assert processes_matching("process_worker_pool") == []


@pytest.mark.timeout(300)
def test_bad_executors_json(two_pools: Pools) -> None:
    path = two_pools.write_executors(
        {"exec_a": {"POOL": "pool_a", "CORES_PER_WORKER": "four"}}, "bad.json"
    )
    with pytest.raises(ExecutorsError) as e:
        parsl_config(path, connection_file=str(two_pools.sidecar.connection_file))
    assert e.value.code == "EXECUTORS_INVALID"
    assert "`exec_a.CORES_PER_WORKER`" in str(e.value)
    assert '"four"' in str(e.value)
    broken = two_pools.tmp / "broken.json"
    broken.write_text('{"exec_a": {"POOL": }')
    with pytest.raises(ExecutorsError, match=r"broken\.json is not valid JSON"):
        parsl_config(broken, connection_file=str(two_pools.sidecar.connection_file))
    assert tunnels(two_pools) == []


@pytest.mark.timeout(300)
def test_unreachable_pool(two_pools: Pools) -> None:
    # a port nobody listens on: the connection is refused
    path = two_pools.write_executors(
        {
            "exec_a": pool_entry(two_pools, "pool_a"),
            "gone": {"SSH_TARGET": "root@127.0.0.1:1", "PYTHON": sys.executable},
        },
        "unreachable.json",
    )
    with pytest.raises(ExecutorsError) as e:
        parsl_config(path, connection_file=str(two_pools.sidecar.connection_file))
    assert e.value.code == "POOL_UNREACHABLE"
    assert "Executor `gone`" in str(e.value)
    assert "root@127.0.0.1:1" in str(e.value)
    # the tunnel already opened for exec_a was closed again: all or nothing
    assert tunnels(two_pools) == []


def versioned_python(tmp: Path, version: str) -> str:
    """A Python `version` virtual environment with this machine's Parsl, made with uv."""
    base = Path(f"/root/.pyenv/versions/{version}/bin/python3")
    if not base.exists():
        pytest.skip(f"SKIPPED LOUDLY: {base} is missing; the version-mismatch test needs it")
    venv = Path(f"/tmp/psc-venv-py{version}-parsl-{parsl.__version__}")
    py = venv / "bin" / "python"
    if not py.exists():
        uv = Path(sys.executable).parent / "uv"
        r = subprocess.run(
            [str(uv), "venv", "--python", str(base), str(venv)], capture_output=True, text=True
        )
        r2 = subprocess.run(
            [str(uv), "pip", "install", "--python", str(py), f"parsl=={parsl.__version__}"],
            capture_output=True,
            text=True,
        )
        if r.returncode or r2.returncode:
            pytest.skip(f"SKIPPED LOUDLY: cannot build {venv} from PyPI: {r.stderr}{r2.stderr}")
    return str(py)


@pytest.mark.timeout(600)
def test_version_mismatch(two_pools: Pools) -> None:
    py312 = versioned_python(two_pools.tmp, "3.12.1")
    path = two_pools.write_executors(
        {
            "exec_a": pool_entry(two_pools, "pool_a"),
            "old_py": pool_entry(two_pools, "pool_b", PYTHON=py312),
        },
        "mismatch.json",
    )
    with pytest.raises(ExecutorsError) as e:
        parsl_config(path, connection_file=str(two_pools.sidecar.connection_file))
    msg = str(e.value)
    assert e.value.code == "VERSION_SKEW"
    assert "Executor `old_py`" in msg
    assert "Python 3.12.1 there vs " + ".".join(map(str, sys.version_info[:3])) + " here" in msg
    assert f"pip install parsl=={parsl.__version__}" in msg
    assert "exec_a" not in msg.replace("`exec_a`", "")  # exec_a passed
    failure = e.value.data["failures"][0]
    assert failure["pool_python"] == "3.12.1" and failure["pool_parsl"] == parsl.__version__
    # nothing left: no tunnel, no worker
    assert tunnels(two_pools) == []
    assert processes_matching("process_worker_pool") == []

    no_parsl = pool_entry(two_pools, "pool_b", PYTHON="/root/.pyenv/versions/3.10.13/bin/python3")
    path = two_pools.write_executors({"bare": no_parsl}, "bare.json")
    with pytest.raises(ExecutorsError) as e2:
        parsl_config(path, connection_file=str(two_pools.sidecar.connection_file))
    assert e2.value.code == "VERSION_SKEW"
    assert "Parsl is not importable" in str(e2.value)
    assert "Python 3.10.13" in str(e2.value)
    assert tunnels(two_pools) == []


@pytest.mark.timeout(300)
def complete_cli(pools: Pools, *args: str) -> subprocess.CompletedProcess[str]:
    """`parsl-sidecar executors complete ARGS` against the pools' sidecar, owner `cli-test`."""
    return subprocess.run(
        [
            *cli_args("executors", "complete", *args),
            "--connection",
            str(pools.sidecar.connection_file),
            "--owner",
            "cli-test",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_complete_cli_writes_atomically(two_pools: Pools) -> None:
    path = two_pools.write_executors({"exec_a": pool_entry(two_pools, "pool_a")}, "in.json")
    path.chmod(0o640)
    before = path.read_text()
    out = two_pools.tmp / "out.json"
    r = complete_cli(two_pools, str(path), str(out), "--json")
    assert r.returncode == 0, r.stderr
    assert path.read_text() == before  # input left alone
    done = json.loads(out.read_text())["exec_a"]
    assert out.stat().st_mode & 0o777 == 0o640
    assert done["HOST_USER"] and done["HOST_IP"] == "127.0.0.1"
    assert done["DIAL_ADDRESS"] == "127.0.0.1"
    assert isinstance(done["INTERCHANGE_PORT"], int) and isinstance(done["WORKER_PORT"], int)
    assert [t["id"] for t in tunnels(two_pools)] == [done["TUNNEL_ID"]]
    # --in-place rewrites the input itself, atomically, keeping its mode and indentation
    inplace = two_pools.write_executors({"exec_a": pool_entry(two_pools, "pool_a")}, "ip.json")
    inplace.chmod(0o600)
    r2 = complete_cli(two_pools, str(inplace), "--in-place")
    assert r2.returncode == 0, r2.stderr
    assert inplace.stat().st_mode & 0o777 == 0o600
    text = inplace.read_text()
    assert '\n    "exec_a": {\n        "POOL": "pool_a",' in text
    assert json.loads(text)["exec_a"]["TUNNEL_ID"] != done["TUNNEL_ID"]
    assert not [p for p in two_pools.tmp.iterdir() if p.name.endswith(".tmp")]
    with two_pools.client() as c:
        assert c.call("executors.release", owner="cli-test")["tunnels"] == 2
    deadline = time.monotonic() + 30
    while tunnels(two_pools) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tunnels(two_pools) == []


WORKFLOW = """
import os, sys, parsl
sys.path.insert(0, {tests!r})
import e2e_apps
from parsl_sidecar import parsl_config
cfg = parsl_config(run_dir={run_dir!r})  # $PARSL_SIDECAR_EXECUTORS, owner = the job
app = parsl.python_app(e2e_apps.square, executors=["exec_a"])
with parsl.load(cfg):
    print("RESULT", sum(app(i).result()[0] for i in range(10)), os.environ["PARSL_SIDECAR_JOB"])
"""


@pytest.mark.timeout(600)
def test_run_with_executors_job_teardown(two_pools: Pools) -> None:
    path = two_pools.write_executors({"exec_a": pool_entry(two_pools, "pool_a")}, "job.json")
    wf = two_pools.tmp / "wf.py"
    wf.write_text(WORKFLOW.format(tests=str(TESTS), run_dir=str(two_pools.tmp / "ri-job")))
    r = subprocess.run(
        [
            *cli_args("run"),
            "--executors",
            str(path),
            "--job",
            "exec-e2e-job",
            "--",
            sys.executable,
            str(wf),
        ],
        capture_output=True,
        text=True,
        timeout=500,
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PARSL_SIDECAR_SSH_CONFIG": str(two_pools.ssh_config),
            "PARSL_SIDECAR_RUNTIME_DIR": str(two_pools.tmp / "rt-job"),
        },
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "RESULT 285 exec-e2e-job" in r.stdout
    # the job's private sidecar completed the file for the job and tore everything down
    assert processes_matching("process_worker_pool") == []
    assert processes_matching(str(two_pools.tmp / "rt-job")) == []


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of group ``pgid``: orphans reparented to a PID 1 that does not
    reap them stay as zombies here."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(pid))
    return out


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return []


def _group_alive(pgid: int) -> bool:
    return bool(_group_members(pgid))


@pytest.mark.timeout(300)
def test_worker_tunnel_port_moves(two_pools: Pools) -> None:
    """A reconnect that finds the workers' port taken on the pool moves the tunnel; the provider
    then cancels the block whose workers dial the old port and starts new ones on the new port.

    The worker tunnel is durable: its relay holds the workers' port across a dropped connection,
    so the port can move only when the relay is gone too (killed here with the sessions, as a
    login node's process reaper would) and something else took the port meanwhile."""
    pools = two_pools
    path = pools.write_executors({"exec_m": pool_entry(pools, "pool_a")}, "moves.json")
    client = pools.client()
    owner = "test-port-moves"
    cfg = parsl_config(path, client=client, owner=owner, run_dir=str(pools.tmp / "ri-moves"))
    provider = cfg.executors[0].provider
    assert isinstance(provider, parsl_sidecar.providers.SidecarLocalProvider)
    tid = provider.link.tunnel_id
    assert tid is not None
    old = provider.link.tunnel_port()
    assert old is not None
    command = f"echo worker -a 127.0.0.1 --port={old}; exec sleep 600"
    first = provider.submit(command, 1)
    assert provider.status([first])[0].state == JobState.RUNNING  # the port has not moved

    relay = next(t for t in tunnels(pools) if t["id"] == tid)["relay"]
    assert relay is not None and relay["pgid"]
    os.killpg(relay["pgid"], signal.SIGKILL)
    blocker = start_port_taker("127.0.0.1", old)
    try:
        assert kill_ssh_sessions(int(pools.sshds["pool_a"]["pid"])) > 0
        assert port_taken(blocker)
        wait_for_port_move(pools, tid, old)
        new = provider.link.tunnel_port()
        assert new is not None and new != old

        # the dropped connection did not end the block: its processes live on, detached
        b = next(b for b in blocks(pools) if b["id"] == first)
        assert b["state"] == "running" and "dropped" in b["tail"], (b["state"], b["tail"])
        assert _group_alive(b["pgid"])
        # its processes carry the block's marker (how a later look tells them from a reused id)
        marker = f"PARSL_SIDECAR_BLOCK={first}".encode()
        assert any(marker in _environ(pid) for pid in _group_members(b["pgid"]))
        # what it writes after the drop reaches here through a new channel
        wait_for(
            lambda: (
                f"worker -a 127.0.0.1 --port={old}"
                in next(b for b in blocks(pools) if b["id"] == first)["tail"]
            ),
            "the detached block's output to come through a new channel",
            timeout=60,
        )
        # but its workers dial the old port: the provider cancels it (not failed: Parsl
        # replaces a cancelled block when it needs one) and the group is gone
        st = provider.status([first])[0]
        assert st.state == JobState.CANCELLED
        assert next(b for b in blocks(pools) if b["id"] == first)["state"] == "cancelled"
        assert not _group_alive(b["pgid"])
        # and the files it wrote through on the pool are gone
        wait_for(
            lambda: not list((Path.home() / ".parsl-sidecar" / "blocks").glob(f"{first}.*")),
            "the cancelled block's files on the pool to be removed",
            timeout=20,
        )
        # a new block gets the new port, whatever port the command it was given names
        second = provider.submit(command, 1)
        wait_for(
            lambda: f"--port={new}" in next(b for b in blocks(pools) if b["id"] == second)["tail"],
            "the new block to print its port",
            timeout=30,
        )
        assert provider.status([second])[0].state == JobState.RUNNING
        provider.cancel([second])
    finally:
        blocker.kill()
        blocker.wait()
        client.call("executors.release", owner=owner)
        client.close()
    assert [t for t in tunnels(pools) if t["id"] == tid] == []
    assert all(b["state"] != "running" for b in blocks(pools))
