"""Jupyter: real notebook kernels (ipykernel, run by nbclient) that load ``parsl_config()`` for a
loopback pool with no sidecar running: each kernel starts its own, runs a staged app through it,
and when the kernel is shut down or SIGKILLed nothing of that sidecar is left (no sidecar, ssh
master, worker, relay or watchdog). Two kernels at once do not disturb each other."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from pools import processes_matching, ssh_config_text, through_sshd, wait_for
from sidecar_proc import short_tmpdir
from testbed import testbed_up

pytestmark = pytest.mark.slow

SETUP = """
import json, os, time
import parsl, parsl_sidecar
from parsl.app.app import bash_app
t = time.monotonic()
client = parsl_sidecar.connect()
client.call("sidecar.ping")
first_call_s = time.monotonic() - t
owned = parsl_sidecar.autostart.owned_sidecar()
"""

LOAD = """
dfk = parsl.load(parsl_sidecar.parsl_config("executors.json", run_dir=os.path.abspath("runinfo")))

@parsl_sidecar.stage_app("nb")
@bash_app
def shout(inputs_dict={}, outputs_dict={}):
    i, o = inputs_dict["text"]["worker_path"], outputs_dict["loud"]["worker_path"]
    return f'mkdir -p "$(dirname {o})" && tr a-z A-Z < {i} > {o}'

def run(n):
    with open(f"in-{n}.txt", "w") as f:
        f.write(f"hello {n} from a notebook\\n")
    spec = lambda kind, path: {"type": "file", "global_path": "pw://{cwd}/" + path,
                               "worker_path": os.path.join(POOL_DIR, path)}
    shout(inputs_dict={"text": spec("file", f"in-{n}.txt")},
          outputs_dict={"loud": spec("file", f"out/loud-{n}.txt")}).result(timeout=180)
    with open(f"out/loud-{n}.txt") as f:
        return f.read()
"""

REPORT = """
print(json.dumps({"kernel": os.getpid(), "sidecar": owned.proc.pid, "rt": owned.runtime_dir,
                  "interchange": dfk.executors["nb"].interchange_proc.pid,
                  "first_call_s": first_call_s, "loud": run(RUN)}))
"""


@dataclass
class Bed:
    sshd: dict[str, Any]
    ssh_config: Path
    tmp: Path


@pytest.fixture(scope="module")
def bed() -> Iterator[Bed]:
    tmp = short_tmpdir("psc-nb-")
    with testbed_up("sshd") as sshd:
        cfg = tmp / "ssh_config"
        cfg.write_text(ssh_config_text({"nbpool": sshd}))
        cfg.chmod(0o600)
        try:
            yield Bed(sshd, cfg, tmp)
        finally:
            # a sidecar that failed to stop with its kernel (a broken build) must not outlive us
            for line in processes_matching(str(tmp)):
                with contextlib.suppress(OSError):
                    os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.system(f"rm -rf {tmp}")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Notebook:
    """A notebook in its own directory, executed cell by cell in a real kernel."""

    def __init__(self, bed: Bed, name: str) -> None:
        self.dir = bed.tmp / name
        pool_dir = self.dir / "pool"
        self.dir.mkdir()
        entry = {
            "POOL": "nbpool",
            "PYTHON": sys.executable,
            "RUN_DIR": str(pool_dir / "run"),
            "WORKER_LOGDIR_ROOT": str(pool_dir / "logs"),
            "CORES_PER_WORKER": 1,
            "MAX_WORKERS_PER_NODE": 1,
        }
        (self.dir / "executors.json").write_text(json.dumps({"nb": entry}, indent=2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARSL_SIDECAR_")}
        # no sidecar named and none running: the runtime directory is this test's, empty
        env["PARSL_SIDECAR_RUNTIME_DIR"] = str(bed.tmp / "rt")
        env["PARSL_SIDECAR_SSH_CONFIG"] = str(bed.ssh_config)
        if "PARSL_SIDECAR_SSH_TRANSPORT" in os.environ:
            env["PARSL_SIDECAR_SSH_TRANSPORT"] = os.environ["PARSL_SIDECAR_SSH_TRANSPORT"]
        env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
        self.nb = nbformat.v4.new_notebook()
        self.nb.cells = [
            nbformat.v4.new_code_cell(f"POOL_DIR = {str(pool_dir)!r}\n{SETUP}"),
            nbformat.v4.new_code_cell(LOAD),
        ]
        # shut down as Jupyter does: a shutdown request, SIGTERM 2.5 s later, SIGKILL after 5 s (a
        # kernel with a loaded Parsl DFK does not end on the request alone, sidecar or not)
        self.km = KernelManager(kernel_name="python3", shutdown_wait_time=5.0)
        self.client = NotebookClient(
            self.nb, km=self.km, timeout=300, resources={"metadata": {"path": str(self.dir)}}
        )
        self.env = env
        self.info: dict[str, Any] = {}

    @contextlib.contextmanager
    def kernel(self) -> Iterator[Notebook]:
        with self.client.setup_kernel(env=self.env):
            for i, cell in enumerate(self.nb.cells):
                self.client.execute_cell(cell, i)
            yield self

    def run(self, n: int) -> dict[str, Any]:
        """Run the staged app once in the kernel; what the kernel reports."""
        cell = nbformat.v4.new_code_cell(REPORT.replace("RUN", str(n)))
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        text = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
        self.info = json.loads(text.strip().splitlines()[-1])
        assert self.info["loud"] == f"HELLO {n} FROM A NOTEBOOK\n"
        assert (self.dir / "out" / f"loud-{n}.txt").read_text() == self.info["loud"]
        return self.info

    def shutdown(self) -> None:
        self.km.shutdown_kernel(now=False)

    def kill(self) -> None:
        os.kill(self.info["kernel"], signal.SIGKILL)
        wait_for(lambda: not alive(self.info["kernel"]), "the kernel to die", 10)
        self.km.shutdown_kernel(now=True)


def assert_gone(nb: Notebook) -> None:
    """Nothing of the kernel's sidecar is left here (sidecar, ssh masters under its runtime
    directory, workers under its pool directory)."""
    info = nb.info
    wait_for(lambda: not alive(info["sidecar"]), "the kernel's sidecar to stop", 30)
    assert processes_matching(info["rt"]) == []
    assert processes_matching(str(nb.dir)) == []
    # the directory stays (sidecar.log, and with openssh a forward's socket file the sidecar's
    # close may leave) when the kernel died before its atexit ran; the next autostart removes it
    assert not (Path(info["rt"]) / "sidecar.json").exists()


def assert_pool_clean(bed: Bed) -> None:
    """Nothing runs on the pool any more: no process started through its sshd (workers, relays,
    watchdogs)."""
    left: list[str] = []

    def idle() -> bool:
        left[:] = through_sshd(bed.sshd["host"], int(bed.sshd["port"]))
        return not left

    try:
        wait_for(idle, "pool idle", 30)
    except AssertionError as e:
        # what stayed, so a failure says which process of the pool outlived its kernel
        raise AssertionError(f"{e}; still running there: {left}") from None


def reap_interchange(nb: Notebook) -> bool:
    """Parsl's interchange is the kernel's child, not the sidecar's: a SIGKILLed kernel leaves it
    (Parsl has no parent watch). Stop it so the test leaves nothing; say whether it was there."""
    pid = nb.info["interchange"]
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        return True
    return False


@pytest.mark.timeout(240)
def test_kernel_shutdown_leaves_nothing(bed: Bed) -> None:
    nb = Notebook(bed, "shutdown")
    with nb.kernel():
        info = nb.run(1)
        print(f"time to first call with autostart in a kernel: {info['first_call_s']:.3f} s")
        assert alive(info["sidecar"]) and Path(info["rt"]).parent == bed.tmp / "rt"
        assert through_sshd(bed.sshd["host"], int(bed.sshd["port"])) != []  # workers, relay
        t = time.monotonic()
        nb.shutdown()
    print(f"kernel shut down in {time.monotonic() - t:.1f} s")
    assert not alive(info["kernel"])
    assert_gone(nb)
    assert_pool_clean(bed)
    assert not reap_interchange(nb)


@pytest.mark.timeout(300)
def test_two_kernels_each_get_their_own_and_a_killed_one_leaves_nothing(bed: Bed) -> None:
    a, b = Notebook(bed, "a"), Notebook(bed, "b")
    with a.kernel(), b.kernel():
        ia, ib = a.run(1), b.run(1)
        assert ia["sidecar"] != ib["sidecar"] and ia["rt"] != ib["rt"]
        assert alive(ia["sidecar"]) and alive(ib["sidecar"])
        a.kill()
        assert_gone(a)
        print(f"interchange left by the SIGKILLed kernel (Parsl's): {reap_interchange(a)}")
        # b is undisturbed: same sidecar, same pool, another app
        assert b.run(2)["sidecar"] == ib["sidecar"] and alive(ib["sidecar"])
        b.shutdown()
    assert_gone(b)
    assert_pool_clean(bed)


ASK = """
import threading
from parsl_sidecar.prompts import Prompt, default_prompt
ask = default_prompt()
got = {}
p = Prompt(host="alice@login:22", text="Verification code: ", echo=False, kind="code", target="hpc")
# as the client does: from a thread of its own, while the cell that caused it runs
th = threading.Thread(target=lambda: got.update(answer=ask(p)))
th.start()
th.join(60)
print("ANSWER", got.get("answer"))
"""


@pytest.mark.timeout(120)
def test_default_prompt_asks_in_the_notebook() -> None:
    """A pool's one-time code prompt reaches a notebook as the kernel's input request (a password
    field under the running cell) and its answer goes back to the prompt's caller."""
    km = KernelManager(kernel_name="python3")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSL_SIDECAR_")}
    km.start_kernel(env=env)
    kc = km.client()
    asked: list[dict[str, Any]] = []
    out: list[str] = []
    try:
        kc.start_channels()
        kc.wait_for_ready(timeout=60)

        def on_input(msg: dict[str, Any]) -> None:
            asked.append(msg["content"])
            kc.input("123456")

        def on_output(msg: dict[str, Any]) -> None:
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])

        reply = kc.execute_interactive(
            ASK, timeout=90, allow_stdin=True, stdin_hook=on_input, output_hook=on_output
        )
        assert reply["content"]["status"] == "ok"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert asked == [{"prompt": "(alice@login) Verification code: ", "password": True}]
    assert "ANSWER 123456" in "".join(out)
