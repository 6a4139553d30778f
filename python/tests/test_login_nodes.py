"""Each kind of login node, reached with the user's ssh config unchanged (the node's generated
config as $PARSL_SIDECAR_SSH_CONFIG), runs a Parsl workflow through
``parsl-sidecar run --executors FILE -- python login_workflow.py``: python_apps on the pool's
executor over a worker tunnel, a file staged in and a file and a directory staged out. Then
nothing is left: no workers, no master of the sidecar's, nothing started through the node's sshd.

The nodes (docs/testbed.md, "Login nodes"): certificates only; a key and then a TOTP code (typed
by the user's SSH_ASKPASS, or on the CLI's terminal); a target behind a ProxyCommand in another
network namespace; and a user's ControlMaster opened first with the real ssh, which the sidecar
must reuse (it has no way to answer the code).

Failures through `run`: an expired certificate is named with its dates; a wrong code is asked
again on the terminal, and codes refused every time say so; the sidecar's master killed while
apps are in flight, and the workflow still completes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pools import processes_matching, through_sshd, wait_for
from sidecar_proc import cli_args, short_tmpdir
from testbed import TestbedError, testbed_up

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
WORKFLOW = TESTS / "login_workflow.py"


@dataclass
class Node:
    """A login node from the test bed, and how this case runs the workflow against it."""

    info: dict[str, Any]
    # where the pool's processes show as SSH_CONNECTION's server end (the node's sshd)
    sshd: tuple[str, int]
    # added to executors.json's entry, and to run's environment
    entry: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    # the workers run in another network namespace than this test
    elsewhere: bool = False
    # the code is typed on run's terminal when asked
    terminal: bool = False


def _needs_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"SKIPPED LOUDLY: {what} needs root")


@contextlib.contextmanager
def login_node(case: str) -> Iterator[Node]:
    if case == "cert":
        # SSH_TRANSPORT in executors.json wins over the environment (ssh2 cannot use certificates)
        with testbed_up("cert") as n:
            yield Node(
                n,
                (n["sshd"]["host"], n["sshd"]["port"]),
                entry={"SSH_TRANSPORT": "openssh"},
                env={"PARSL_SIDECAR_SSH_TRANSPORT": "ssh2"},
            )
        return
    if case == "otp-askpass":
        _needs_root("the TOTP node (a PAM service file in /etc/pam.d)")
        with testbed_up("otp") as n:
            # the user's own SSH_ASKPASS (SSH_ASKPASS_REQUIRE=force) types the code
            env = {**n["askpassEnv"], "PARSL_SIDECAR_SSH_TRANSPORT": "openssh"}
            yield Node(n, (n["sshd"]["host"], n["sshd"]["port"]), env=env)
        return
    if case == "otp-terminal":
        _needs_root("the TOTP node (a PAM service file in /etc/pam.d)")
        with testbed_up("otp") as n:
            yield Node(
                n,
                (n["sshd"]["host"], n["sshd"]["port"]),
                entry={"SSH_TRANSPORT": "openssh"},
                terminal=True,
            )
        return
    if case == "proxycommand":
        _needs_root("the ProxyCommand node (network namespaces)")
        if os.environ.get("PSC_TESTBED_NO_NETNS") == "1":
            pytest.skip(
                "SKIPPED LOUDLY: the ProxyCommand node needs namespaces (PSC_TESTBED_NO_NETNS=1)"
            )
        try:
            cm = testbed_up("proxycommand")
            n = cm.__enter__()
        except TestbedError as e:
            pytest.skip(f"SKIPPED LOUDLY: no ProxyCommand node (namespaces unavailable?): {e}")
        try:
            # `auto` picks openssh (OpenSSH >= 8.4 here); ssh2 would refuse the ProxyCommand
            yield Node(
                n,
                (n["target"]["host"], n["target"]["port"]),
                env={"PARSL_SIDECAR_SSH_TRANSPORT": "auto"},
                elsewhere=True,
            )
        finally:
            cm.__exit__(None, None, None)
        return
    if case == "controlmaster":
        _needs_root("the TOTP node (a PAM service file in /etc/pam.d)")
        with testbed_up("otp", control_master=True) as n:
            # nobody can answer a code here: it works only if the user's master is reused
            yield Node(
                n,
                (n["sshd"]["host"], n["sshd"]["port"]),
                entry={"SSH_TRANSPORT": "openssh"},
                env={"PARSL_SIDECAR_PROMPT_TIMEOUT": "5s"},
            )
        return
    raise AssertionError(case)


def sshd_log_count(node: Node, pattern: str) -> int:
    sshd = node.info.get("sshd") or node.info["target"]
    return len(re.findall(pattern, Path(sshd["logPath"]).read_text()))


def run_args(
    node: Node, tmp: Path, label: str, command: list[str] | None = None, alias: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """`parsl-sidecar run --executors FILE -- COMMAND` (default: the workflow) and its
    environment, for executor ``label`` on the node (its ``alias``, or another Host of its
    config)."""
    pool_dir = tmp / "pool"
    executors = tmp / "executors.json"
    entry = {
        "POOL": alias or node.info["alias"],
        "PYTHON": sys.executable,
        "RUN_DIR": str(pool_dir / "run"),
        "WORKER_LOGDIR_ROOT": str(pool_dir / "logs"),
        "WORKER_INIT": f"export PYTHONPATH={TESTS}",
        "CORES_PER_WORKER": 1,
        "MAX_WORKERS_PER_NODE": 2,
        **node.entry,
    }
    executors.write_text(json.dumps({label: entry}, indent=4) + "\n")
    here = tmp / "here"
    here.mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SSH_ASKPASS")},
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PARSL_SIDECAR_SSH_CONFIG": node.info["configPath"],
        "PARSL_SIDECAR_RUNTIME_DIR": str(tmp / "rt"),
        "PARSL_SIDECAR_STATE_DIR": str(tmp / "state"),
        **node.env,
    }
    workflow = [sys.executable, str(WORKFLOW), label, str(here), str(pool_dir / "data")]
    args = [*cli_args("run", "--executors", str(executors), "--"), *(command or workflow)]
    return args, env


def run_workflow(
    node: Node,
    tmp: Path,
    label: str,
    type_code: Callable[[], str] | None,
    command: list[str] | None = None,
    alias: str | None = None,
) -> tuple[int, str]:
    """Run `run_args` to its end: (exit code, output). With ``type_code`` run gets a terminal,
    and ``type_code()`` is typed each time the code is asked for."""
    args, env = run_args(node, tmp, label, command, alias)
    if type_code is None:
        r = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=150
        )
        return r.returncode, r.stdout + r.stderr
    return on_terminal(args, env, type_code)


def on_terminal(
    args: list[str], env: dict[str, str], type_code: Callable[[], str]
) -> tuple[int, str]:
    """Run ``args`` on a pseudo-terminal; type ``type_code()`` and Enter at each code prompt."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    out = b""
    answered = 0
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process of the terminal closed it
                    break
                if not chunk:
                    break
                out += chunk
                asked = out.count(b"Verification code: ")
                if asked > answered:
                    answered = asked
                    os.write(master, type_code().encode() + b"\r")
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode(errors="replace")


def assert_nothing_left(node: Node, tmp: Path) -> None:
    """No workers, no master or socket of the sidecar (they live under tmp/rt), nothing on the
    pool (no process started through the node's sshd)."""
    assert processes_matching(str(tmp)) == []
    assert [p for p in processes_matching("process_worker_pool") if str(tmp) in p] == []
    # the job watchdog's last `sleep 2` may outlive it by 2 s (src/remote/jobs/watchdog.sh)
    deadline = time.monotonic() + 5
    while through_sshd(*node.sshd) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert through_sshd(*node.sshd) == []
    if (tmp / "rt").exists():
        assert [p for p in (tmp / "rt").rglob("*") if p.is_socket()] == []


def sidecar_masters(tmp: Path) -> list[int]:
    """PIDs of the `ssh -M` masters the sidecar of a run in ``tmp`` started (sockets under it)."""
    out = []
    for line in processes_matching(str(tmp)):
        pid, cmd = line.split(": ", 1)
        if cmd.split()[:2] == ["ssh", "-M"]:
            out.append(int(pid))
    return out


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A short private dir (the sidecar's sockets go under it), removed after the test."""
    d = short_tmpdir("psc-login-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


CASES = ["cert", "otp-askpass", "otp-terminal", "proxycommand", "controlmaster"]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("case", CASES)
def test_workflow_through_login_node(case: str, tmp: Path) -> None:
    label = f"{case.replace('-', '_')}_exec"
    typed: list[str] = []
    with login_node(case) as node:
        code_command = node.info.get("codeCommand")

        def type_code() -> str:
            assert code_command is not None
            c = subprocess.run(code_command, capture_output=True, text=True, check=True)
            typed.append(c.stdout.strip())
            return typed[-1]

        logins = sshd_log_count(node, r"Accepted (?:publickey|keyboard-interactive)")
        started = time.monotonic()
        code, output = run_workflow(node, tmp, label, type_code if node.terminal else None)
        took = time.monotonic() - started
        print(f"{case}: run took {took:.1f} s")
        assert code == 0, output[-4000:]
        result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
        here = tmp / "here"
        assert (here / "out" / "report.txt").read_text().startswith("LINE 0 OF THE LOGIN-NODE")
        assert sorted(p.name for p in (here / "out" / "lines").rglob("*.txt")) == [
            "0.txt",
            "1.txt",
            "2.txt",
            "3.txt",
            "4.txt",
        ]
        # the workers ran behind the node: in the compute namespace for the ProxyCommand node
        assert (result["worker_netns"] != [result["here_netns"]]) is node.elsewhere, result
        if node.terminal:
            assert "(target `otp`) asks:" in output and "Verification code: " in output
            assert typed and not any(c in output for c in typed), "the code was echoed"
        if case == "controlmaster":
            # the sidecar never logged in itself: it used the user's master, which still runs
            assert sshd_log_count(node, r"Accepted (?:publickey|keyboard-interactive)") == logins
            pid = node.info["controlMasterPid"]
            os.kill(pid, 0)
            check = subprocess.run(
                ["ssh", "-F", node.info["configPath"], "-O", "check", node.info["alias"]],
                capture_output=True,
                text=True,
            )
            assert f"pid={pid}" in check.stderr, check.stderr
        else:
            assert sshd_log_count(node, r"Accepted (?:publickey|keyboard-interactive)") > logins
        assert_nothing_left(node, tmp)


@pytest.mark.timeout(120)
def test_expired_certificate_is_named(tmp: Path) -> None:
    with login_node("cert") as node:
        code, output = run_workflow(
            node, tmp, "expired_exec", None, ["true"], alias=node.info["expiredAlias"]
        )
        assert code == 1, output
        cert = node.info["expiredCertPath"]
        assert f"The certificate {cert} expired at 2020-01-02T00:00:00" in output, output
        assert "Permission denied (publickey)" in output
        assert_nothing_left(node, tmp)


@pytest.mark.timeout(120)
def test_wrong_code_asked_again_then_refused(tmp: Path) -> None:
    with login_node("otp-terminal") as node:
        # a wrong code typed first: the terminal asks again, saying so; the right code then works
        commands = [node.info["wrongCodeCommand"], node.info["codeCommand"]]

        def type_code() -> str:
            c = subprocess.run(commands.pop(0), capture_output=True, text=True, check=True)
            return c.stdout.strip()

        code, output = run_workflow(node, tmp, "otp_exec", type_code, ["true"])
        assert code == 0, output
        assert output.count("Verification code: ") == 2, output
        assert "The server did not accept the previous answer." in output
        assert commands == []
        # the user's SSH_ASKPASS gives a wrong code each time: asked 3 times, then a clear error
        node.env = {**node.info["wrongAskpassEnv"]}
        code, output = run_workflow(node, tmp, "otp_exec", None, ["true"])
        assert code == 1, output
        assert "It asked 3 times and refused every answer: a wrong or expired one-time code" in (
            output
        ), output
        assert_nothing_left(node, tmp)


@pytest.mark.timeout(240)
def test_master_killed_mid_workflow(tmp: Path) -> None:
    """The sidecar's master SIGKILLed while apps are in flight: the link starts a new master, for
    which the user's SSH_ASKPASS types a new code, the durable worker tunnel resumes, and the
    workflow completes with every result and its staging. (The TOTP node: a certificate node
    would only skip the code.)"""
    pause = tmp / "pause"
    pause.mkdir()
    with login_node("otp-askpass") as node:
        node.env["LOGIN_WORKFLOW_PAUSE"] = str(pause)
        logins = sshd_log_count(node, r"Accepted (?:publickey|keyboard-interactive)")
        args, env = run_args(node, tmp, "killed_exec")
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            wait_for(
                lambda: (pause / "paused").exists() or proc.poll() is not None,
                "the workflow to pause with apps in flight",
                timeout=120,
            )
            assert proc.poll() is None, proc.communicate()[0]
            first = sidecar_masters(tmp)
            assert len(first) == 1, first
            os.kill(first[0], signal.SIGKILL)
            (pause / "go").touch()
            wait_for(
                lambda: sidecar_masters(tmp) not in ([], first) or proc.poll() is not None,
                "a new master",
                timeout=60,
            )
            second = sidecar_masters(tmp)
            output, _ = proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, output[-4000:]
        assert second and second != first, (first, second)
        # the new master logged in again, with a new code
        assert sshd_log_count(node, r"Accepted (?:publickey|keyboard-interactive)") >= logins + 2
        assert (tmp / "here" / "out" / "report.txt").exists()
        assert_nothing_left(node, tmp)
