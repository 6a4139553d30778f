"""A pool's head node as the remote providers see it: commands and files through the sidecar.

Parsl's providers run every command on the machine that runs the workflow. :class:`PoolLink`
carries them to the pool over the sidecar's SSH connection (RPC ``ssh.exec``), copies files
there, and stages the CurveZMQ certificate directory that ``encrypted=True`` workers need at
the path their command names.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import socket
import threading
from typing import Any

from .client import Client, connect
from .errors import ExecutorsError

__all__ = ["PoolLink", "shell_path"]

log = logging.getLogger("parsl_sidecar.providers")

_CERT_RE = re.compile(r"--cert_dir[ =](\S+)")
# the port workers dial, as pool_launch_cmd and Parsl's default launch_cmd write it
_PORT_RE = re.compile(r"--port=(\d+)")


def shell_path(path: str) -> str:
    """Quote a pool path for a shell command line, keeping a leading ``~/`` expandable.

    Parameters
    ----------
    path : str
        An absolute path, or one starting with ``~/`` or ``$HOME/``.

    Returns
    -------
    str
        The path as one shell word.
    """
    for prefix in ("~/", "$HOME/"):
        if path.startswith(prefix):
            return '"$HOME"/' + shlex.quote(path[len(prefix) :])
    if path in ("~", "$HOME"):
        return '"$HOME"'
    return shlex.quote(path)


class PoolLink:
    """Run commands and place files on one pool through the sidecar.

    Parameters
    ----------
    target : str
        The pool's SSH target (``user@host[:port]``, a ~/.ssh/config alias, or ``local``).
    client : Client, optional
        A connected client; by default one is opened on first use with ``connection_file``.
    connection_file : str, optional
        The sidecar's connection file (default: ``$PARSL_SIDECAR_CONNECTION_FILE`` or the
        runtime directory's).
    remote_dir : str
        Working directory on the pool; certificates go under ``<remote_dir>/certs``.
    label : str
        The executor's label, for error messages.
    tunnel_id : str, optional
        The sidecar tunnel the workers dial (``TUNNEL_ID`` of a completed executors.json).
        When it comes back on another port after a reconnect, new workers are given the new
        port (:meth:`prepare_command`) and blocks started with the old one are known by
        :meth:`stranded`.
    """

    def __init__(
        self,
        target: str,
        *,
        client: Client | None = None,
        connection_file: str | None = None,
        remote_dir: str = "~/parsl-sidecar",
        label: str = "",
        tunnel_id: str | None = None,
    ) -> None:
        self.target = target
        self.label = label
        self.tunnel_id = tunnel_id
        self.remote_dir = remote_dir.rstrip("/") or "/"
        self._client = client
        self._connection_file = connection_file
        self._own_client = client is None
        self._lock = threading.Lock()
        self._home: str | None = None
        self._staged: dict[str, str] = {}

    @property
    def client(self) -> Client:
        """The sidecar client (connected on first use)."""
        with self._lock:
            if self._client is None or self._client.closed:
                self._client = connect(self._connection_file)
                self._own_client = True
            return self._client

    def _who(self) -> str:
        return f"Executor `{self.label}`" if self.label else f"Pool `{self.target}`"

    def exec(
        self, command: str, timeout: float = 30.0, stdin: str | None = None
    ) -> tuple[int, str, str]:
        """Run a shell command on the pool's head node.

        Parameters
        ----------
        command : str
            A POSIX sh command line.
        timeout : float
            Seconds before the remote command is killed.
        stdin : str, optional
            Text given to the command's standard input.

        Returns
        -------
        tuple of (int, str, str)
            Exit code (-1 when killed by a signal or timed out), stdout, stderr: the shape of
            Parsl's ``execute_wait``.
        """
        params: dict[str, Any] = {
            "target": self.target,
            "command": command,
            "timeout_ms": int(timeout * 1000),
        }
        if stdin is not None:
            params["stdin"] = stdin
        res = self.client.call("ssh.exec", params, timeout=timeout + 60)
        code = res.get("exit_code", res.get("exitCode"))
        if not isinstance(code, int):
            log.warning(
                "%s: `%s` on `%s` ended without an exit code (timed out: %s, signal: %s): %s",
                self._who(),
                command[:200],
                self.target,
                res.get("timed_out"),
                res.get("signal"),
                str(res.get("stderr", "")).strip()[-500:],
            )
            code = -1
        return code, res.get("stdout", ""), res.get("stderr", "")

    def home(self) -> str:
        """The SSH user's home directory on the pool."""
        if self._home is None:
            if self.target == "local":
                self._home = os.path.expanduser("~")
            else:
                rc, out, err = self.exec('printf "%s" "$HOME"')
                if rc != 0 or not out.startswith("/"):
                    raise ExecutorsError(
                        f"{self._who()}: cannot read $HOME on pool `{self.target}`: {err.strip()}",
                        code="POOL_UNREACHABLE",
                    )
                self._home = out
        return self._home

    def absolute(self, path: str) -> str:
        """A pool path with a leading ``~`` or ``$HOME`` replaced by the home directory."""
        for prefix in ("~", "$HOME"):
            if path == prefix:
                return self.home()
            if path.startswith(prefix + "/"):
                return self.home() + path[len(prefix) :]
        return path

    def put_file(self, path: str, text: str, mode: int = 0o600) -> None:
        """Write a text file on the pool (its directory is created, mode 0700 when new).

        Parameters
        ----------
        path : str
            Absolute path on the pool.
        text : str
            The file's content.
        mode : int
            The file's permission bits.
        """
        directory = os.path.dirname(path) or "/"
        cmd = (
            f"umask 077 && mkdir -p {shell_path(directory)} && "
            f"cat > {shell_path(path)}.tmp$$ && chmod {mode:o} {shell_path(path)}.tmp$$ && "
            f"mv -f {shell_path(path)}.tmp$$ {shell_path(path)}"
        )
        rc, _out, err = self.exec(cmd, timeout=60, stdin=text)
        if rc != 0:
            raise ExecutorsError(
                f"{self._who()}: cannot write {path} on pool `{self.target}`: {err.strip()}",
                code="PROVIDER_FAILED",
            )

    def stage_cert_dir(self, local_dir: str) -> str:
        """Copy a CurveZMQ certificate directory to the pool, mode 0700; return its pool path.

        Parameters
        ----------
        local_dir : str
            The executor's ``cert_dir`` on this machine.

        Returns
        -------
        str
            The directory on the pool (``<remote_dir>/certs/<hash>``); the same local
            directory is copied once.
        """
        with self._lock:
            done = self._staged.get(local_dir)
        if done is not None:
            return done
        if self.target == "local":
            return local_dir
        key = hashlib.sha256(f"{socket.gethostname()}:{local_dir}".encode()).hexdigest()[:16]
        remote = f"{self.absolute(self.remote_dir)}/certs/{key}"
        parts = [f"umask 077 && mkdir -p {shell_path(remote)} && chmod 700 {shell_path(remote)}"]
        for name in sorted(os.listdir(local_dir)):
            full = os.path.join(local_dir, name)
            if not os.path.isfile(full):
                continue
            with open(full, encoding="ascii") as f:
                body = f.read()
            marker = "PSC_CERT_EOF"
            parts.append(f"cat > {shell_path(remote + '/' + name)} <<'{marker}'\n{body}\n{marker}")
        rc, _out, err = self.exec("\n".join(parts) + "\n", timeout=60)
        if rc != 0:
            raise ExecutorsError(
                f"{self._who()}: cannot copy the worker certificates to {remote} on pool "
                f"`{self.target}`: {err.strip()}",
                code="PROVIDER_FAILED",
            )
        with self._lock:
            self._staged[local_dir] = remote
        log.debug("staged certificates %s -> %s:%s", local_dir, self.target, remote)
        return remote

    def prepare_command(self, command: str) -> str:
        """Stage the worker command's certificate directory and give it the tunnel's port.

        Parameters
        ----------
        command : str
            The worker launch command Parsl passes to ``submit``.

        Returns
        -------
        str
            The command with ``--cert_dir`` pointing at the pool's copy (unchanged when the
            executor is not encrypted or the pool is this machine), and ``--port=`` the port
            the worker tunnel listens on now (it moves when a reconnect finds the old one
            taken on the pool).
        """
        m = _CERT_RE.search(command)
        if m is not None and m.group(1) != "None":
            remote = self.stage_cert_dir(m.group(1))
            command = command[: m.start(1)] + remote + command[m.end(1) :]
        now = self.tunnel_port()
        m = _PORT_RE.search(command)
        if now is not None and m is not None and int(m.group(1)) != now:
            log.warning(
                "%s: the worker tunnel %s now listens on port %d, not %s: new workers dial %d",
                self._who(),
                self.tunnel_id,
                now,
                m.group(1),
                now,
            )
            command = command[: m.start(1)] + str(now) + command[m.end(1) :]
        return command

    @staticmethod
    def command_port(command: str) -> int | None:
        """The port a worker command dials (``--port=``), if it names one."""
        m = _PORT_RE.search(command)
        return int(m.group(1)) if m else None

    def tunnel_port(self) -> int | None:
        """The port workers dial through the worker tunnel now.

        ``None`` without a tunnel, or while it is not open (reconnecting: its port is decided
        when it is back).
        """
        if self.tunnel_id is None:
            return None
        for t in self.client.call("tunnels.list"):
            if t["id"] == self.tunnel_id:
                return int(t["dial_port"]) if t["state"] == "open" else None
        return None

    def stranded(self, ports: dict[str, int | None]) -> list[str]:
        """Blocks whose workers dial a port the worker tunnel has left.

        Parameters
        ----------
        ports : dict
            Block or job id to the port its workers were started with.

        Returns
        -------
        list of str
            The ids to cancel: their workers can no longer reach the interchange, and Parsl
            starts new blocks (with the new port) in their place when it needs them.
        """
        if self.tunnel_id is None or not any(p is not None for p in ports.values()):
            return []
        try:
            now = self.tunnel_port()
        except Exception as e:  # a status poll goes on; the next one looks again
            log.debug("%s: cannot read the worker tunnel's port: %s", self._who(), e)
            return []
        if now is None:
            return []
        out = [j for j, p in ports.items() if p is not None and p != now]
        for j in out:
            log.warning(
                "%s: block %s dials port %d, but the worker tunnel %s moved to port %d after "
                "a reconnect; cancelling it so that a new block replaces it",
                self._who(),
                j,
                ports[j],
                self.tunnel_id,
                now,
            )
        return out

    def close(self) -> None:
        """Close the client if this link opened it."""
        with self._lock:
            if self._own_client and self._client is not None:
                self._client.close()
                self._client = None
