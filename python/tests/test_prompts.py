"""``connect(prompt=...)`` and ``parsl_config(prompt=...)`` answer what a login node asks.

Against the test bed's TOTP node (publickey, then a one-time code through PAM; root) and a real
sidecar whose ssh config names it: the callable gets a :class:`parsl_sidecar.Prompt` for its own
calls and its answer logs in; a wrong code is asked again; ``prompt=None`` answers nothing; the
call's timeout stands still while the callable thinks. The default prompt without a terminal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pools import start_sidecar_env
from sidecar_proc import Sidecar, short_tmpdir
from testbed import testbed_up

import parsl_sidecar
from parsl_sidecar.prompts import DEFAULT, PromptHold, default_prompt, resolve_prompt


def _skip_unless_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: the TOTP node writes a PAM service in /etc/pam.d (root)")


@contextlib.contextmanager
def otp_sidecar(timeout: str = "30s") -> Iterator[tuple[dict[str, Any], Sidecar]]:
    """The TOTP node and a sidecar that reaches it as ``n["alias"]``."""
    _skip_unless_root()
    with testbed_up("otp") as n:
        runtime = short_tmpdir()
        env = {"PARSL_SIDECAR_SSH_CONFIG": n["configPath"], "PARSL_SIDECAR_PROMPT_TIMEOUT": timeout}
        sc = start_sidecar_env(runtime, env)
        try:
            yield n, sc
        finally:
            code = sc.stop()
            out = sc.stderr()
            os.unlink(sc.stderr_path)
            shutil.rmtree(runtime, ignore_errors=True)
            assert code == 0, out


def _code(n: dict[str, Any], wrong: bool = False) -> str:
    cmd = n["wrongCodeCommand"] if wrong else n["codeCommand"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.timeout(90)
def test_connect_prompt_answers_the_code() -> None:
    with otp_sidecar() as (n, sc):
        asked: list[parsl_sidecar.Prompt] = []

        def prompt(p: parsl_sidecar.Prompt) -> str:
            asked.append(p)
            return _code(n, wrong=len(asked) == 1)

        with parsl_sidecar.connect(sc.connection_file, prompt=prompt) as c:
            r = c.call("ssh.exec", target=n["alias"], command="echo in")
        assert r["stdout"] == "in\n" and r["exit_code"] == 0
        assert [p.attempt for p in asked] == [1, 2]  # a wrong code, asked again
        first = asked[0]
        assert first.kind == "code" and first.echo is False
        assert first.text == "Verification code: "
        assert first.target == n["alias"] and "@" in first.host
        assert asked[1].message is not None and "did not accept" in asked[1].message
        log = (sc.runtime_dir / "sidecar.log").read_text()
        assert "ssh prompt answered" in log


@pytest.mark.timeout(90)
def test_prompt_none_answers_nothing() -> None:
    with otp_sidecar(timeout="3s") as (n, sc):
        with parsl_sidecar.connect(sc.connection_file, prompt=None) as c:
            t0 = time.monotonic()
            with pytest.raises(parsl_sidecar.SSHError) as e:
                c.call("ssh.exec", target=n["alias"], command="true")
        assert time.monotonic() - t0 >= 2.9
        assert e.value.code == "SSH_AUTH"
        assert '"Verification code:"' in str(e.value)
        assert "no one answered within 3s" in str(e.value)
        assert "prompt=" in str(e.value)


@pytest.mark.timeout(90)
def test_call_timeout_stands_still_while_prompting() -> None:
    with otp_sidecar() as (n, sc):

        def slow(p: parsl_sidecar.Prompt) -> str:
            time.sleep(3)  # longer than the call's 2 s timeout
            return _code(n)

        with parsl_sidecar.connect(sc.connection_file, timeout=2, prompt=slow) as c:
            r = c.call("ssh.exec", target=n["alias"], command="echo late")
            assert r["stdout"] == "late\n"
            # and the same through the I/O thread
            fut = c.call_async("ssh.exec", target=n["alias"], command="echo again")
            assert fut.result(timeout=30)["stdout"] == "again\n"


@pytest.mark.timeout(180)
def test_parsl_config_prompt_answers_while_completing() -> None:
    with otp_sidecar() as (n, sc):
        tmp = short_tmpdir("psc-prompt-")
        try:
            run_dir = tmp / "pool"
            executors = {
                "otp_pool": {
                    "POOL": n["alias"],
                    "PYTHON": sys.executable,
                    "RUN_DIR": str(run_dir),
                    "WORKER_LOGDIR_ROOT": str(run_dir / "logs"),
                    "CORES_PER_WORKER": 1,
                    "MAX_WORKERS_PER_NODE": 1,
                }
            }
            path = Path(tmp / "executors.json")
            path.write_text(__import__("json").dumps(executors))
            asked: list[parsl_sidecar.Prompt] = []

            def prompt(p: parsl_sidecar.Prompt) -> str:
                asked.append(p)
                return _code(n)

            # a client of the test's own, so that nothing of it outlives the test
            with parsl_sidecar.connect(sc.connection_file, prompt=None) as c:
                config = parsl_sidecar.parsl_config(
                    str(path), client=c, owner="prompt-test", preflight=False, prompt=prompt
                )
                assert [e.label for e in config.executors] == ["otp_pool"]
                assert len(asked) == 1 and asked[0].kind == "code"
                c.call("executors.release", owner="prompt-test")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def test_default_prompt_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest's stdin is not a terminal: nobody is asked here
    assert not sys.stdin.isatty() or os.environ.get("PARSL_SIDECAR_JOB")
    assert default_prompt() is None
    assert resolve_prompt(DEFAULT) is None
    assert resolve_prompt(None) is None

    def mine(p: parsl_sidecar.Prompt) -> str:
        return "x"

    assert resolve_prompt(mine) is mine
    with pytest.raises(TypeError, match="Expected prompt to be a callable"):
        resolve_prompt("123456")
    # under `parsl-sidecar run`, the run command's terminal answers
    monkeypatch.setenv("PARSL_SIDECAR_JOB", "job-x")
    assert default_prompt() is None


def test_prompt_hold_counts_only_open_time() -> None:
    h = PromptHold()
    assert h.held() == 0.0 and not h.active
    h.enter()
    h.enter()
    time.sleep(0.05)
    assert h.active
    h.leave()
    assert h.active
    h.leave()
    held = h.held()
    assert not h.active and held >= 0.05
    time.sleep(0.02)
    assert h.held() == held
