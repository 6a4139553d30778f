"""End to end on PBS Pro, against a stand-in: real Parsl and its PBSProProvider, a real sidecar,
sshd on loopback whose sessions have fixtures/fake_pbs (qsub, qstat, qdel) first on the PATH.

No PBS Pro or OpenPBS can be installed here; the stand-in implements the contract Parsl's
PBSProProvider uses (see fixtures/fake_pbs/pbs_standin.py and test_pbs_standin.py), runs each
job in its own session and keeps their states in a spool directory this test reads."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import parsl
import pytest
from parsl.data_provider.files import File
from pools import Pools, in_session, open_tunnels, processes_matching, running_pools, wait_for
from sidecar_proc import short_tmpdir

from parsl_sidecar import parsl_config
from parsl_sidecar.providers import SidecarPBSProProvider

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
FAKE_PBS = TESTS / "fixtures" / "fake_pbs"


def spool_jobs(p: Pools) -> list[dict[str, Any]]:
    """The stand-in's jobs (its qstat attributes plus ``_id``), oldest first."""
    files = sorted(
        Path(p.extra["spool"], "jobs").glob("*.json"), key=lambda f: int(f.name[:-5].split(".")[0])
    )
    return [json.loads(f.read_text()) for f in files]


@pytest.fixture(scope="module")
def pbs() -> Iterator[Pools]:
    spool = short_tmpdir("psc-pbs-spool-")
    path = f"{FAKE_PBS}:/usr/local/bin:/usr/bin:/bin"
    setenv = f"SetEnv PATH={path} PBS_STANDIN_SPOOL={spool} PBS_STANDIN_QUEUES=workq,debug"
    try:
        with running_pools("pbs", extra_config=[setenv]) as p:
            p.extra["spool"] = spool
            try:
                yield p
            finally:
                for job in spool_jobs(p):  # a failed test leaves no job running
                    if job["job_state"] == "R":
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(int(job["session_id"]), signal.SIGKILL)
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def pbs_entry(p: Pools, **extra: Any) -> dict[str, Any]:
    run_dir = p.tmp / "pbs"
    return {
        "SSH_TARGET": "pbs",
        "PROVIDER": "pbspro",
        "QUEUE": "workq",
        "ACCOUNT": "proj42",
        "CPUS_PER_NODE": 2,
        "SELECT_OPTIONS": "mem=2gb",
        "WALLTIME": "00:10:00",
        "SCHEDULER_OPTIONS": "#PBS -l place=scatter\n#PBS -r n",
        "PYTHON": sys.executable,
        "RUN_DIR": str(run_dir),
        "WORKER_LOGDIR_ROOT": str(run_dir / "logs"),
        "WORKER_INIT": f"export PYTHONPATH={TESTS}; export POOL_NAME=pbs",
        "MAX_WORKERS_PER_NODE": 2,
        "INIT_BLOCKS": 1,
        "MAX_BLOCKS": 1,
        **extra,
    }


@pytest.mark.timeout(900)
def test_pbspro_workers_in_stand_in_jobs(pbs: Pools) -> None:
    import e2e_apps

    before = len(spool_jobs(pbs))
    path = pbs.write_executors({"pbs_exec": pbs_entry(pbs)})
    run_dir = pbs.tmp / "pbs"
    client = pbs.client()
    cfg = parsl_config(path, client=client, owner="pbs-test", run_dir=str(pbs.tmp / "ri"))
    provider = cfg.executors[0].provider
    assert isinstance(provider, SidecarPBSProProvider)
    assert (provider.queue, provider.account, provider.walltime) == ("workq", "proj42", "00:10:00")

    def job_env() -> tuple[str, str, int]:
        import os as _os

        return (
            _os.environ.get("PBS_JOBID", ""),
            _os.environ.get("PBS_ENVIRONMENT", ""),
            _os.getsid(0),
        )

    sq = parsl.python_app(e2e_apps.square, executors=["pbs_exec"])
    echo = parsl.bash_app(e2e_apps.echo_pool, executors=["pbs_exec"])
    env_app = parsl.python_app(job_env, executors=["pbs_exec"])
    outdir = pbs.tmp / "out"
    outdir.mkdir()
    with parsl.load(cfg):
        py = [sq(i) for i in range(20)]
        sh = [echo(i, outputs=[File(str(outdir / f"{i}.txt"))]) for i in range(20)]
        results = [f.result(timeout=600) for f in py]
        codes = [f.result(timeout=300) for f in sh]
        job_id, batch, sid = env_app().result(timeout=300)
        running = [j for j in spool_jobs(pbs) if j["job_state"] == "R"]
        assert [j["_id"] for j in running] == [job_id], "the workers run in one stand-in job"
        assert int(running[0]["session_id"]) == sid, "and in that job's session"
    parsl.clear()

    assert [r[0] for r in results] == [i * i for i in range(20)]
    assert {r[1] for r in results} == {"pbs"}
    assert codes == [0] * 20
    assert [(outdir / f"{i}.txt").read_text() for i in range(20)] == [
        f"pbs {i}\n" for i in range(20)
    ]
    assert re.fullmatch(r"\d+\.standin", job_id) and batch == "PBS_BATCH"

    # what qsub got: Parsl's command line, the script (its copy in the spool) with the #PBS
    # lines the executors.json asked for, every path on the pool side
    assert len(spool_jobs(pbs)) == before + 1, "one block, one qsub"
    (job,) = [j for j in spool_jobs(pbs) if j["_id"] == job_id]
    assert job["Submit_arguments"].startswith("-q workq -A proj42 ")
    remote_scripts = str(run_dir / "submit_scripts")
    assert job["Submit_arguments"].split()[-1].startswith(remote_scripts + "/")
    assert (job["queue"], job["Account_Name"], job["Rerunable"]) == ("workq", "proj42", "False")
    script = Path(pbs.extra["spool"], "jobs", f"{job_id}.SC").read_text()
    lines = script.splitlines()
    name = job["Job_Name"]
    for line in (
        "#PBS -S /bin/bash",
        f"#PBS -N {name}",
        "#PBS -m n",
        "#PBS -l walltime=00:10:00",
        "#PBS -l select=1:ncpus=2:mem=2gb",
        f"#PBS -o {remote_scripts}/{name}.stdout",
        f"#PBS -e {remote_scripts}/{name}.stderr",
        "#PBS -l place=scatter",
        "#PBS -r n",
    ):
        assert line in lines, f"{line!r} not in the submit script:\n{script}"
    assert f"export PYTHONPATH={TESTS}; export POOL_NAME=pbs" in lines
    assert str(pbs.tmp / "ri") not in script, "a local path reached the pool"
    assert f"--cert_dir {run_dir}/" in script
    assert job["Resource_List"]["select"] == "1:ncpus=2:mem=2gb"
    assert Path(f"{remote_scripts}/{name}.stdout").exists(), "the job's -o path got its output"

    # Parsl's cleanup ran qdel: the job ended by SIGTERM, nothing of it is left
    def state() -> dict[str, Any]:
        return next(j for j in spool_jobs(pbs) if j["_id"] == job_id)

    wait_for(lambda: state()["job_state"] == "F", "the stand-in job to finish")
    assert state()["Exit_status"] == 256 + signal.SIGTERM, "qdel's SIGTERM ended it"
    assert in_session(sid) == []
    assert processes_matching(str(run_dir)) == []
    assert [j for j in spool_jobs(pbs) if j["job_state"] in ("Q", "R")] == []
    with pbs.client() as c:
        c.call("executors.release", owner="pbs-test")
    wait_for(lambda: open_tunnels(pbs) == [], "tunnel and relay to close")
    client.close()


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("label", "setting", "message"),
    [
        ("pbs_queue", {"QUEUE": "gpu"}, "(exit 170): qsub: Unknown queue"),
        ("pbs_gpus", {"SELECT_OPTIONS": "gpus=1"}, "(exit 187): qsub: Unknown resource: gpus"),
    ],
)
def test_refused_qsub_names_the_executor(
    pbs: Pools, label: str, setting: dict[str, Any], message: str
) -> None:
    import e2e_apps

    before = len(spool_jobs(pbs))
    path = pbs.write_executors({label: pbs_entry(pbs, **setting)}, f"{label}.json")
    client = pbs.client()
    cfg = parsl_config(path, client=client, owner=label, run_dir=str(pbs.tmp / f"ri-{label}"))
    app = parsl.python_app(e2e_apps.square, executors=[label])
    with parsl.load(cfg):
        fut = app(3)
        with pytest.raises(Exception) as e:
            fut.result(timeout=300)
    parsl.clear()
    msg = str(e.value)
    assert f"Executor `{label}`: qsub on pool `pbs` failed {message}" in msg, repr(e.value)
    assert len(spool_jobs(pbs)) == before, "the stand-in queued a job it should have refused"
    assert processes_matching(str(pbs.tmp / "pbs")) == []
    with contextlib.suppress(Exception), pbs.client() as c:
        c.call("executors.release", owner=label)
    wait_for(lambda: open_tunnels(pbs) == [], "tunnel and relay to close")
    client.close()
