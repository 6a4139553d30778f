"""End to end on Slurm: head node and compute node in separate network namespaces (the test
bed's topology), sbatch through the sidecar, workers reaching the interchange through the
worker tunnel and the head-node relay."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parsl
import pytest
from parsl.jobs.states import JobState
from pools import (
    Pools,
    kill_ssh_sessions,
    open_tunnels,
    port_taken,
    processes_matching,
    ssh_config_text,
    start_port_taker,
    start_sidecar_env,
    wait_for,
    wait_for_port_move,
)
from sidecar_proc import short_tmpdir
from testbed import TestbedError, testbed_up

from parsl_sidecar import Client, ExecutorsError, parsl_config
from parsl_sidecar.providers import SidecarSlurmProvider

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster() -> Iterator[Pools]:
    tmp = short_tmpdir("psc-slurm-")
    try:
        cm = testbed_up("topology", slurm=True, start_timeout=180)
        info = cm.__enter__()
    except TestbedError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.skip(f"SKIPPED LOUDLY: no Slurm topology (namespaces or Slurm missing): {e}")
    try:
        cfg = tmp / "ssh_config"
        cfg.write_text(ssh_config_text({"hpc": info["sshd"]}))
        cfg.chmod(0o600)
        runtime = short_tmpdir()
        sc = start_sidecar_env(runtime, {"PARSL_SIDECAR_SSH_CONFIG": str(cfg)})
        try:
            yield Pools(sc, {"hpc": info["sshd"]}, cfg, tmp, extra=info)
        finally:
            code = sc.stop()
            shutil.rmtree(runtime, ignore_errors=True)
            assert code == 0, sc.stderr()
    finally:
        cm.__exit__(None, None, None)
        shutil.rmtree(tmp, ignore_errors=True)


def slurm_entry(p: Pools, **extra: Any) -> dict[str, Any]:
    run_dir = p.tmp / "hpc"
    return {
        "SSH_TARGET": "hpc",
        "PROVIDER": "slurm",
        "PARTITION": p.extra["slurm"]["partition"],
        "PYTHON": sys.executable,
        "RUN_DIR": str(run_dir),
        "WORKER_LOGDIR_ROOT": str(run_dir / "logs"),
        "WORKER_INIT": f"export PYTHONPATH={TESTS}; export POOL_NAME=hpc",
        "EXCLUSIVE": False,
        "WALLTIME": "00:10:00",
        "MAX_WORKERS_PER_NODE": 2,
        "INIT_BLOCKS": 1,
        "MAX_BLOCKS": 1,
        **extra,
    }


def squeue(p: Pools) -> list[str]:
    with p.client() as c:
        r = c.call("ssh.exec", target="hpc", command="squeue -h -o %i", timeout=60)
    return [x for x in r["stdout"].split() if x]


@pytest.mark.timeout(900)
def test_slurm_workers_on_a_compute_node(cluster: Pools) -> None:
    import e2e_apps

    path = cluster.write_executors({"hpc": slurm_entry(cluster)})
    client = cluster.client()
    cfg = parsl_config(path, client=client, owner="slurm-test", run_dir=str(cluster.tmp / "ri"))
    htex = cfg.executors[0]
    assert htex.address == "127.0.0.1"
    # workers dial the relay on the head node's cluster side, not loopback
    head = cluster.extra["head"]["computeSideAddr"]
    dial = htex.launch_cmd.split(" -a ", 1)[1].split(" ", 1)[0].split(",")
    assert head in dial and "127.0.0.1" not in dial
    my_netns = os.readlink("/proc/self/ns/net")

    def where() -> tuple[str, str]:
        import os as _os

        return _os.readlink("/proc/self/ns/net"), _os.environ.get("SLURM_JOB_ID", "")

    app = parsl.python_app(e2e_apps.square, executors=["hpc"])
    netns_app = parsl.python_app(where, executors=["hpc"])
    with parsl.load(cfg):
        results = [app(i).result(timeout=600) for i in range(20)]
        ns, job = netns_app().result(timeout=300)
    parsl.clear()
    assert [r[0] for r in results] == [i * i for i in range(20)]
    assert ns != my_netns, "the worker ran in this machine's namespace, not the compute node's"
    assert job, "the worker did not run inside a Slurm job"
    wait_for(lambda: squeue(cluster) == [], "the block's Slurm job to end")
    with cluster.client() as c:
        c.call("executors.release", owner="slurm-test")
    wait_for(lambda: open_tunnels(cluster) == [], "tunnel and relay to close")
    assert processes_matching("process_worker_pool") == []
    client.close()


@pytest.mark.timeout(600)
def test_bad_partition_caught_by_preflight(cluster: Pools) -> None:
    path = cluster.write_executors({"hpc_bad": slurm_entry(cluster, PARTITION="bogus")}, "p.json")
    with pytest.raises(ExecutorsError) as e:
        parsl_config(path, connection_file=str(cluster.sidecar.connection_file))
    assert e.value.code == "PROVIDER_FAILED"
    assert "Executor `hpc_bad`" in str(e.value) and "no partition `bogus`" in str(e.value)
    assert open_tunnels(cluster) == []


@pytest.mark.timeout(900)
def test_failed_sbatch_names_the_executor(cluster: Pools) -> None:
    # more memory than the node has: sbatch itself refuses the job
    path = cluster.write_executors({"hpc_big": slurm_entry(cluster, MEM_PER_NODE=1000)}, "b.json")
    import e2e_apps

    cfg = parsl_config(
        path,
        connection_file=str(cluster.sidecar.connection_file),
        owner="sbatch-fail",
        run_dir=str(cluster.tmp / "ri2"),
    )
    app = parsl.python_app(e2e_apps.square, executors=["hpc_big"])
    with parsl.load(cfg):
        fut = app(3)
        with pytest.raises(Exception) as e:
            fut.result(timeout=600)
    parsl.clear()
    msg = str(e.value)
    assert "Executor `hpc_big`: sbatch on pool `hpc` failed (exit 1)" in msg, repr(e.value)
    assert "Requested node configuration is not available" in msg
    assert squeue(cluster) == []
    with contextlib.suppress(Exception), cluster.client() as c:
        c.call("executors.release", owner="sbatch-fail")
    wait_for(lambda: open_tunnels(cluster) == [], "tunnel and relay to close")


def slurm_provider(cluster: Pools, tag: str, owner: str) -> tuple[Client, SidecarSlurmProvider]:
    """A Slurm executor's provider from parsl_config (its worker tunnel open), used directly."""
    path = cluster.write_executors({f"hpc_{tag}": slurm_entry(cluster)}, f"{tag}.json")
    client = cluster.client()
    cfg = parsl_config(path, client=client, owner=owner, run_dir=str(cluster.tmp / f"ri-{tag}"))
    provider = cfg.executors[0].provider
    assert isinstance(provider, SidecarSlurmProvider)
    provider.script_dir = str(cluster.tmp / f"scripts-{tag}")
    os.makedirs(provider.script_dir, exist_ok=True)
    return client, provider


@pytest.mark.timeout(900)
def test_slurm_job_on_a_moved_port_is_cancelled(cluster: Pools) -> None:
    """The worker tunnel comes back on another port (the relay's was taken on the head node
    while the connection was down): the provider scancels the job whose workers dial the old
    port, and a new job gets the new port."""
    owner = "slurm-moves"
    client, provider = slurm_provider(cluster, "m", owner)
    tid = provider.link.tunnel_id
    t = next(t for t in open_tunnels(cluster) if t["id"] == tid)
    old, host = int(t["dial_port"]), str(t["dial_host"])
    assert t["relay"] and t["relay"]["pgid"]
    job = provider.submit(f"echo -a {host} --port={old}; sleep 600", 1)
    wait_for(lambda: job in squeue(cluster), "the job to be queued")
    assert provider.status([job])[0].state in (JobState.PENDING, JobState.RUNNING)

    blocker = start_port_taker(host, old, netns=cluster.extra["head"]["ns"])
    try:
        # the connection drops (its sshd processes end) and the relay with it; the blocker
        # takes the port before the tunnel is back
        assert kill_ssh_sessions(int(cluster.sshds["hpc"]["pid"])) > 0
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(t["relay"]["pgid"]), signal.SIGKILL)
        assert port_taken(blocker)
        wait_for_port_move(cluster, tid, old, timeout=120)
        new = provider.link.tunnel_port()
        assert new is not None and new != old
        assert provider.status([job])[0].state == JobState.CANCELLED
        wait_for(lambda: job not in squeue(cluster), "the stranded job to leave the queue")
        # the next job's worker command dials the new port
        again = provider.submit(f"echo -a {host} --port={old}; sleep 600", 1)
        # Parsl names the script after the job (no suffix; .stdout and .stderr beside it)
        scripts = [
            p for p in Path(provider.script_dir).iterdir() if p.suffix not in (".stdout", ".stderr")
        ]
        assert len(scripts) == 2
        assert sum(f"--port={new}" in p.read_text() for p in scripts) == 1, scripts
        provider.cancel([again])
        wait_for(lambda: squeue(cluster) == [], "the jobs to end")
    finally:
        blocker.kill()
        blocker.wait()
        client.call("executors.release", owner=owner)
        client.close()
    wait_for(lambda: open_tunnels(cluster) == [], "tunnel and relay to close")


@pytest.mark.timeout(600)
def test_a_job_slurm_already_forgot_is_completed_not_running_for_ever(cluster: Pools) -> None:
    """A block's job that ended and was purged from Slurm (MinJobAge, 4 s here; 300 s by
    default, which a dropped connection can outlast) before the next status poll: squeue asked
    for it alone exits 1, and Parsl's SlurmProvider then never updated it, so the block stayed
    RUNNING and was never replaced (the chaos soak stalled on it). It is COMPLETED now."""
    owner = "slurm-forgot"
    client, provider = slurm_provider(cluster, "f", owner)
    try:
        job = provider.submit("sleep 1", 1)
        assert provider.status([job])[0].state in (JobState.PENDING, JobState.RUNNING)
        # until Slurm no longer knows the job at all (past MinJobAge, at its next purge)
        wait_for(
            lambda: "Invalid job id" in provider.link.exec(f"squeue --job {job}", timeout=10)[2],
            "Slurm to forget the job",
            timeout=300,
        )
        # the next poll (status() asks squeue, as Parsl's JobStatusPoller does)
        assert provider.status([job])[0].state == JobState.COMPLETED
    finally:
        client.call("executors.release", owner=owner)
        client.close()
    wait_for(lambda: open_tunnels(cluster) == [], "tunnel and relay to close")
