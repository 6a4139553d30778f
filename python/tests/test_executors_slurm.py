"""End to end on Slurm: head node and compute node in separate network namespaces (the test
bed's topology), sbatch through the sidecar, workers reaching the interchange through the
worker tunnel and the head-node relay."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parsl
import pytest
from pools import (
    Pools,
    open_tunnels,
    processes_matching,
    ssh_config_text,
    start_sidecar_env,
    wait_for,
)
from sidecar_proc import short_tmpdir
from testbed import TestbedError, testbed_up

from parsl_sidecar import ExecutorsError, parsl_config

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
