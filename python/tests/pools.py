"""Pools for the executors tests: sshd instances from the test bed, an ssh config naming them,
and a real sidecar that reaches them (PARSL_SIDECAR_SSH_CONFIG)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar_proc import Sidecar, cli_args, short_tmpdir, wait_for_file
from testbed import OUR_SSHD_PORTS, testbed_up

import parsl_sidecar


@dataclass
class Pools:
    """Running sshd pools (by alias), the sidecar that reaches them, and a scratch dir."""

    sidecar: Sidecar
    sshds: dict[str, dict[str, Any]]
    ssh_config: Path
    tmp: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self) -> parsl_sidecar.Client:
        return parsl_sidecar.connect(self.sidecar.connection_file, timeout=120)

    def write_executors(self, executors: dict[str, Any], name: str = "executors.json") -> Path:
        path = self.tmp / name
        path.write_text(json.dumps(executors, indent=4) + "\n")
        return path

    def entry(self, alias: str, **extra: Any) -> dict[str, Any]:
        """An executors.json entry for a loopback pool that runs this test's Python."""
        run_dir = self.tmp / "pools" / alias
        return {
            "POOL": alias,
            "PYTHON": sys.executable,
            "RUN_DIR": str(run_dir),
            "WORKER_LOGDIR_ROOT": str(run_dir / "logs"),
            "CORES_PER_WORKER": 1,
            "MAX_WORKERS_PER_NODE": 2,
            **extra,
        }


def ssh_config_text(sshds: dict[str, dict[str, Any]]) -> str:
    blocks = []
    for alias, s in sshds.items():
        blocks.append(
            f"Host {alias}\n    HostName {s['host']}\n    Port {s['port']}\n    User {s['user']}\n"
            f"    IdentityFile {s['keyPath']}\n    UserKnownHostsFile {s['knownHostsPath']}\n"
            "    StrictHostKeyChecking yes\n"
        )
    return "\n".join(blocks)


def start_sidecar_env(runtime_dir: Path, env: dict[str, str]) -> Sidecar:
    """`parsl-sidecar serve` with extra environment (the ssh config)."""
    args = ["serve", "--runtime-dir", str(runtime_dir), "--log-level", "warn"]
    stderr_path = Path(tempfile.mkstemp(prefix="psc-stderr-", dir="/tmp")[1])
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            cli_args(*args),
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env={**os.environ, **env},
        )
    connection_file = runtime_dir / "sidecar.json"
    wait_for_file(connection_file, proc, stderr_path)
    return Sidecar(proc, runtime_dir, connection_file, stderr_path)


@contextlib.contextmanager
def running_pools(*aliases: str, **sshd_opts: Any) -> Iterator[Pools]:
    """Start one sshd per alias and a sidecar whose ssh config names them."""
    tmp = short_tmpdir("psc-pools-")
    with contextlib.ExitStack() as stack:
        sshds = {a: stack.enter_context(testbed_up("sshd", **sshd_opts)) for a in aliases}
        cfg = tmp / "ssh_config"
        cfg.write_text(ssh_config_text(sshds))
        cfg.chmod(0o600)
        runtime = short_tmpdir()
        sc = start_sidecar_env(runtime, {"PARSL_SIDECAR_SSH_CONFIG": str(cfg)})
        try:
            yield Pools(sc, sshds, cfg, tmp)
        finally:
            code = sc.stop()
            out = sc.stderr()
            shutil.rmtree(runtime, ignore_errors=True)
            os.unlink(sc.stderr_path)
            shutil.rmtree(tmp, ignore_errors=True)
            assert code == 0, f"sidecar exited with {code}; stderr:\n{out}"


def _marked(pid: str) -> bool:
    """Its environment has this session's marker, or came in through one of its sshds."""
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    session = os.environ.get("PSC_TEST_SESSION", "").encode()
    for kv in env:
        if session and kv == b"PSC_TEST_SESSION=" + session:
            return True
        if kv.startswith(b"SSH_CONNECTION="):
            parts = kv.split(b"=", 1)[1].split()
            if len(parts) == 4 and parts[3].isdigit() and int(parts[3]) in OUR_SSHD_PORTS:
                return True
    return False


def _ours(pid: str) -> bool:
    """Started by this test session: marked itself, or below a marked process (an sshd this
    session started hands its sessions a fresh environment)."""
    seen = 0
    while pid not in ("0", "1") and seen < 64:
        if _marked(pid):
            return True
        try:
            pid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            return False
        seen += 1
    return False


def processes_matching(text: str) -> list[str]:
    """Command lines of this session's live processes that contain ``text`` (this test's own
    process excluded; other runs sharing the machine are not counted: see ``_ours``)."""
    out = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmd and _ours(pid):
            out.append(f"{pid}: {cmd}")
    return out


def through_sshd(addr: str, port: int) -> list[str]:
    """Live processes started through the sshd at addr:port: their SSH_CONNECTION ends there."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            conn = next((e for e in env if e.startswith(b"SSH_CONNECTION=")), None)
            if conn is None:
                continue
            fields = conn.decode().split("=", 1)[1].split()
            if fields[2] == addr and int(fields[3]) == port:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                out.append(f"{pid}: {cmd[:200]}")
    return out


def open_tunnels(p: Pools) -> list[dict[str, Any]]:
    """The sidecar's tunnels that are not closed."""
    with p.client() as c:
        res = c.call("tunnels.list")
    items: list[dict[str, Any]] = res["tunnels"] if isinstance(res, dict) else res
    return [t for t in items if t.get("state") != "closed"]


def wait_for(check: Any, what: str, timeout: float = 60) -> None:
    """Poll ``check`` every 0.5 s until it is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def in_session(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``, from /proc."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(pid))
    return out


def _ppid(pid: str) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def kill_ssh_sessions(listener_pid: int) -> int:
    """SIGKILL the per-connection sshd processes under an sshd listener, as a dropped connection
    ends them; what they started lives on, as it does when the network fails. Returns how many."""
    kids: list[int] = []
    frontier = {listener_pid}
    while frontier:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError, IndexError, ValueError):
                if _ppid(pid) in frontier:
                    found.append(int(pid))
        kids += found
        frontier = set(found)
    killed = 0
    for pid in kids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().startswith("sshd"):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


_PORT_TAKER = """
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 20
while True:
    s = socket.socket()
    # like sshd: connections of a tunnel's checks may linger in TIME_WAIT on the port
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        break
    except OSError:
        s.close()
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.001)
s.listen()
print("bound", flush=True)
time.sleep(600)
"""


def start_port_taker(host: str, port: int, netns: str | None = None) -> subprocess.Popen[str]:
    """A process that binds host:port as soon as it is free (in ``netns`` if given) and holds
    it until killed. Start it before the port's holder goes; :func:`port_taken` waits for it."""
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.Popen(
        [*prefix, sys.executable, "-c", _PORT_TAKER, host, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )


def port_taken(taker: subprocess.Popen[str]) -> bool:
    """Whether the taker bound its port (it gives up after 20 s)."""
    assert taker.stdout is not None
    return taker.stdout.readline().strip() == "bound"


def wait_for_port_move(p: Pools, tunnel_id: str, old: int, timeout: float = 60) -> None:
    """Wait until the tunnel is open again on a port other than ``old``."""

    def moved() -> bool:
        t = next(t for t in open_tunnels(p) if t["id"] == tunnel_id)
        return bool(t["state"] == "open" and t["dial_port"] != old)

    wait_for(moved, "the worker tunnel to come back on another port", timeout=timeout)
