"""The PBS Pro stand-in (fixtures/fake_pbs) keeps the contract it documents: the checks, the
outputs Parsl's PBSProProvider parses, and job processes that qdel ends. Run locally, no sshd."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pools import in_session
from sidecar_proc import short_tmpdir

FAKE_PBS = Path(__file__).resolve().parent / "fixtures" / "fake_pbs"


class Pbs:
    """The stand-in's commands with a private spool; queues workq (default) and debug."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.spool = tmp / "spool"
        self.spool.mkdir()
        self.env = {
            **os.environ,
            "PATH": f"{FAKE_PBS}:{os.environ['PATH']}",
            "PBS_STANDIN_SPOOL": str(self.spool),
            "PBS_STANDIN_QUEUES": "workq,debug",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), env=self.env, cwd=self.tmp, capture_output=True, text=True, timeout=60
        )

    def script(self, body: str, *directives: str, name: str = "job.sh") -> Path:
        path = self.tmp / name
        lines = ["#!/bin/bash", *(f"#PBS {d}" for d in directives), "", body, ""]
        path.write_text("\n".join(lines))
        return path

    def json(self, *ids: str) -> dict[str, Any]:
        r = self.run("qstat", "-x", "-f", "-F", "json", *ids)
        assert r.returncode == 0, r.stderr
        out: dict[str, Any] = json.loads(r.stdout)
        return out

    def wait_state(self, jid: str, state: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.json(jid)["Jobs"][jid]
            if job["job_state"] == state:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {jid} stayed {job['job_state']}, expected {state}")
            time.sleep(0.1)


@pytest.fixture
def pbs() -> Iterator[Pbs]:
    tmp = short_tmpdir("psc-pbs-")
    p = Pbs(tmp)
    try:
        yield p
    finally:
        for f in p.spool.glob("jobs/*.json"):  # nothing may survive a failed test
            job = json.loads(f.read_text())
            if job["job_state"] == "R":
                p.run("qdel", job["_id"])
        shutil.rmtree(tmp, ignore_errors=True)


REFUSALS = [
    # (command line, directives, stderr, exit status): OpenPBS's messages and statuses
    (["qsub", "-Z", "x", "{s}"], [], "qsub: invalid option -- 'Z'\nusage: qsub", 2),
    (["qsub", "-q"], [], "qsub: option requires an argument -- 'q'", 2),
    (["qsub"], [], "needs a script file", 2),
    (["qsub", "{s}", "extra"], [], "usage: qsub", 2),
    (["qsub", "/nonexistent/job.sh"], [], "qsub: script file:: No such file or directory", 1),
    (["qsub", "{d}"], [], "qsub: script not a file", 1),
    (["qsub", "-q", "gpu", "{s}"], [], "qsub: Unknown queue", 170),
    (["qsub", "-l", "gpus=1", "{s}"], [], "qsub: Unknown resource Resource_List.gpus", 187),
    (["qsub", "{s}"], ["-l select=1:ncpus=2:gpus=1"], "qsub: Unknown resource: gpus", 187),
    (["qsub", "-l", "walltime=1h", "{s}"], [], "qsub: Illegal attribute or resource value", 166),
    (["qsub", "-l", "select=1:ncpus=two", "{s}"], [], "Illegal attribute or resource value", 166),
    (["qsub", "-j", "xx", "{s}"], [], "qsub: illegal -j value", 2),
    (["qsub", "-N", "has space", "{s}"], [], "qsub: illegal -N value", 2),
    (["qsub", "-V", "{s}"], [], "qsub: option -V is not emulated by this PBS stand-in", 2),
    (["qsub", "{s}"], ["-l walltime=10min"], "qsub: Illegal attribute or resource value", 166),
    (["qsub", "{s}"], ["-l walltime"], "qsub: illegal -l value\nqsub: directive error: -l", 1),
    (["qsub", "{s}"], ["-Z"], "qsub: invalid option -- 'Z'\nqsub: directive error: -Z", 1),
    (["qstat", "-F", "json"], [], "qstat: conflicting options.", 2),
    (["qstat", "-f", "-F", "xml"], [], "usage: \nqstat", 2),
    (["qstat", "-Y"], [], "qstat: invalid option -- 'Y'", 2),
    (["qstat", "-x", "-f", "-F", "json", "42"], [], "qstat: Unknown Job Id 42.standin", 153),
    (["qstat", "abc"], [], "qstat: illegally formed job identifier: abc", 1),
    (["qdel"], [], "usage:\n\tqdel", 2),
    (["qdel", "42.standin"], [], "qdel: Unknown Job Id 42.standin", 153),
    (["qdel", "-x", "42"], [], "qdel: -x is not emulated by this PBS stand-in", 2),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("argv", "directives", "stderr", "status"), REFUSALS)
def test_refusals(
    pbs: Pbs, argv: list[str], directives: list[str], stderr: str, status: int
) -> None:
    script = pbs.script("true", *directives)
    args = [a.format(s=script, d=pbs.tmp) for a in argv]
    r = pbs.run(*args)
    assert r.returncode == status, r.stderr
    assert stderr in r.stderr
    if "json" in argv and status != 2:  # like qstat: the JSON prologue, and no "Jobs"
        assert set(json.loads(r.stdout)) == {"timestamp", "pbs_version", "pbs_server"}
    else:
        assert r.stdout == ""
    assert list(pbs.spool.glob("jobs/*.json")) == []  # nothing was queued


@pytest.mark.timeout(60)
def test_spool_missing_is_no_server(pbs: Pbs) -> None:
    script = pbs.script("true")
    pbs.env["PBS_STANDIN_SPOOL"] = str(pbs.tmp / "nowhere")
    r = pbs.run("qsub", str(script))
    assert r.returncode == 1 and "cannot connect to server standin" in r.stderr


@pytest.mark.timeout(60)
def test_job_runs_in_its_own_session_and_qdel_kills_its_group(pbs: Pbs) -> None:
    out = pbs.tmp / "job.out"
    script = pbs.script(
        'echo "id=$PBS_JOBID env=$PBS_ENVIRONMENT workdir=$PBS_O_WORKDIR path=$PATH"\n'
        "sleep 300 &\nsleep 301 &\nwait",
        "-S /bin/bash",
        "-N parsl.pbs.block-0.1",
        "-l walltime=00:10:00",
        "-l select=1:ncpus=2:mem=2gb",
        "-l place=scatter",
        f"-o {out}",
        f"-e {pbs.tmp / 'job.err'}",
        "-q debug",  # the command line wins
    )
    r = pbs.run("qsub", "-q", "workq", "-A", "proj42", str(script))
    assert r.returncode == 0, r.stderr
    jid = r.stdout.strip()
    assert jid == "1.standin"
    job = pbs.wait_state(jid, "R")
    assert job["Job_Name"] == "parsl.pbs.block-0.1"
    assert (job["queue"], job["Account_Name"]) == ("workq", "proj42")
    assert job["Resource_List"] == {
        "walltime": "00:10:00",
        "select": "1:ncpus=2:mem=2gb",
        "place": "scatter",
        "ncpus": 2,
    }
    sid = int(job["session_id"])
    assert os.getsid(sid) == sid and os.getpgid(sid) == sid  # a session leader: setsid
    assert len(in_session(sid)) == 3  # bash and its two sleeps
    table = pbs.run("qstat")
    assert table.returncode == 0 and f"{jid:<17}" in table.stdout

    r = pbs.run("qdel", jid)
    assert (r.returncode, r.stderr) == (0, "")
    assert in_session(sid) == []  # qdel returns once the group is gone
    job = pbs.wait_state(jid, "F")
    assert job["Exit_status"] == 256 + 15  # killed by SIGTERM, PBS Pro's convention
    assert out.read_text() == (f"id={jid} env=PBS_BATCH workdir={pbs.tmp} path=/bin:/usr/bin\n")
    r = pbs.run("qstat", jid)
    assert r.returncode == 35 and "Job has finished, use -x or -H" in r.stderr
    r = pbs.run("qdel", jid)
    assert r.returncode == 35 and f"qdel: Job has finished {jid}" in r.stderr


@pytest.mark.timeout(60)
def test_exit_status_and_default_output_paths(pbs: Pbs) -> None:
    script = pbs.script("echo out; echo err >&2; exit 3", name="three.sh")
    jid = pbs.run("qsub", str(script)).stdout.strip()
    job = pbs.wait_state(jid, "F")
    assert (job["Exit_status"], job["queue"], job["Job_Name"]) == (3, "workq", "three.sh")
    seq = jid.split(".")[0]
    assert (pbs.tmp / f"three.sh.o{seq}").read_text() == "out\n"
    assert (pbs.tmp / f"three.sh.e{seq}").read_text() == "err\n"
    assert pbs.run("qstat").stdout == ""  # finished jobs only with -x


@pytest.mark.timeout(60)
def test_walltime_is_enforced(pbs: Pbs) -> None:
    err = pbs.tmp / "wall.err"
    script = pbs.script("sleep 120", "-l walltime=00:00:01", f"-e {err}")
    jid = pbs.run("qsub", str(script)).stdout.strip()
    sid = int(pbs.wait_state(jid, "R")["session_id"])
    job = pbs.wait_state(jid, "F")
    assert job["Exit_status"] == 256 + 15
    assert "PBS: job killed: walltime" in err.read_text()
    assert in_session(sid) == []


@pytest.mark.timeout(60)
def test_joined_output_undeliverable_output_and_a_missing_shell(pbs: Pbs) -> None:
    out = pbs.tmp / "joined.out"
    joined = pbs.script("echo out; echo err >&2", "-j oe", f"-o {out}", name="a.sh")
    lost = pbs.script("echo lost", "-o /nonexistent/dir/x.out", name="b.sh")
    err = pbs.tmp / "c.err"
    no_shell = pbs.script("true", "-S /nonexistent/sh", f"-e {err}", name="c.sh")
    ids = [pbs.run("qsub", str(s)).stdout.strip() for s in (joined, lost, no_shell)]
    assert [pbs.wait_state(j, "F")["Exit_status"] for j in ids] == [0, 0, -1]
    assert out.read_text() == "out\nerr\n"
    assert (pbs.spool / "jobs" / f"{ids[1]}.OU").read_text() == "lost\n"  # kept, undelivered
    assert "cannot start /nonexistent/sh" in err.read_text()
