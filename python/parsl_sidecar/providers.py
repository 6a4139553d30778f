"""Parsl providers that start workers on a remote pool through the sidecar.

Parsl removed SSH channels in 2024.12: its providers run sbatch, qsub or the worker command on
the machine that runs the workflow. These providers run them on the pool's head node over the
sidecar's SSH connection instead, and work in a hand-written Parsl config too::

    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl_sidecar.providers import SidecarSlurmProvider, pool_launch_cmd

    HighThroughputExecutor(
        label="hpc",
        address="127.0.0.1",
        worker_port=interchange_port,          # the local end of a sidecar tunnel
        launch_cmd=pool_launch_cmd(dial_address, worker_port),
        provider=SidecarSlurmProvider("me@login.hpc", partition="debug", label="hpc"),
    )

- :class:`SidecarLocalProvider`: workers on the head node; each block is a process group the
  sidecar starts, tracks and kills as a whole.
- :class:`SidecarSlurmProvider` / :class:`SidecarPBSProProvider`: Parsl's own SlurmProvider /
  PBSProProvider, with ``execute_wait`` and the submit script carried to the head node.

Each provider copies the executor's CurveZMQ certificate directory (``encrypted=True``) to the
pool, mode 0700, and rewrites ``--cert_dir`` in the worker command to that copy.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from parsl.jobs.states import JobState, JobStatus
from parsl.launchers import SingleNodeLauncher
from parsl.launchers.base import Launcher
from parsl.providers import PBSProProvider, SlurmProvider
from parsl.providers.base import ExecutionProvider
from parsl.providers.errors import SubmitException
from parsl.utils import RepresentationMixin

from ._parsl_compat import require_supported_parsl, slurm_keywords, worker_launch_cmd
from ._pool import PoolLink, shell_path
from .client import Client

__all__ = [
    "SidecarLocalProvider",
    "SidecarPBSProProvider",
    "SidecarSlurmProvider",
    "pool_launch_cmd",
]

log = logging.getLogger("parsl_sidecar.providers")


def pool_launch_cmd(dial_address: str, worker_port: int, python: str | None = None) -> str:
    """A HighThroughputExecutor ``launch_cmd`` whose workers dial the pool-side tunnel end.

    Parsl's default command passes ``-a {addresses}`` (the interchange's own addresses) and
    ``--port={worker_port}`` (the port it bound here); behind a tunnel, workers must dial the
    pool-side address and port instead, which can differ.

    Parameters
    ----------
    dial_address : str
        IP address workers dial on the pool (the head node's loopback, or the relay's
        cluster-side address); ``DIAL_ADDRESS`` of a completed executors.json.
    worker_port : int
        Port workers dial on the pool (``WORKER_PORT``).
    python : str, optional
        The pool's interpreter; the worker pool then runs as
        ``<python> -m parsl.executors.high_throughput.process_worker_pool`` instead of
        ``process_worker_pool.py`` from PATH.

    Returns
    -------
    str
        The installed Parsl's default command (a format string with its fields,
        ``{cores_per_worker}``...) with the pool-side address, port and interpreter.
    """
    exe = (
        "process_worker_pool.py"
        if python is None
        else f"{shell_path(python)} -m parsl.executors.high_throughput.process_worker_pool"
    )
    return worker_launch_cmd(exe, dial_address, worker_port)


def _submit_exception(
    job_name: str,
    message: str,
    stdout: str | None = None,
    stderr: str | None = None,
    retcode: int | None = None,
) -> SubmitException:
    return SubmitException(job_name, message, stdout, stderr, retcode)  # type: ignore[no-untyped-call]


_STATES = {
    "running": JobState.RUNNING,
    "completed": JobState.COMPLETED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}


class SidecarLocalProvider(ExecutionProvider, RepresentationMixin):
    """Workers on a pool's head node, started over the sidecar's SSH connection.

    Each block runs ``worker_init`` and the launcher-wrapped worker command with bash in its
    own process group on the head node; status comes from the sidecar, and cancel kills the
    whole group (SIGTERM, then SIGKILL).

    Parameters
    ----------
    target : str
        SSH target of the head node (``user@host[:port]``, a ~/.ssh/config alias, or
        ``local``).
    nodes_per_block, init_blocks, min_blocks, max_blocks, parallelism : int or float
        As for Parsl's LocalProvider.
    worker_init : str
        Shell commands run before the workers (e.g. activating an environment).
    launcher : Launcher
        Wraps the worker command (default SingleNodeLauncher).
    remote_dir : str
        Working directory on the pool (created); certificates go under it.
    label : str
        The executor's label, for messages.
    owner : str, optional
        Who holds the blocks in the sidecar (default ``pid:<this process>``); blocks are
        cancelled when that owner is released or this process exits.
    client : Client, optional
        A sidecar client; by default one is connected with ``connection_file``.
    connection_file : str, optional
        The sidecar's connection file.
    cmd_timeout : int
        Seconds to wait for the sidecar to start a block.
    tunnel_id : str, optional
        The worker tunnel (``TUNNEL_ID``): when a reconnect moves its port, new blocks get the
        new port and blocks started with the old one are cancelled (Parsl replaces them).
    """

    def __init__(
        self,
        target: str,
        *,
        nodes_per_block: int = 1,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1,
        worker_init: str = "",
        launcher: Launcher | None = None,
        remote_dir: str = "~/parsl-sidecar",
        label: str = "",
        owner: str | None = None,
        client: Client | None = None,
        connection_file: str | None = None,
        cmd_timeout: int = 60,
        tunnel_id: str | None = None,
    ) -> None:
        require_supported_parsl()
        self._label = "sidecar-local"
        self.target = target
        self.nodes_per_block = nodes_per_block
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.worker_init = worker_init
        self.launcher = launcher if launcher is not None else SingleNodeLauncher()
        self.remote_dir = remote_dir
        self.executor_label = label
        self.owner = owner or f"pid:{os.getpid()}"
        self.cmd_timeout = cmd_timeout
        self.script_dir: str | None = None
        self.resources: dict[object, Any] = {}
        self.cores_per_node: int | None = None
        self.mem_per_node: float | None = None
        self.link = PoolLink(
            target,
            client=client,
            connection_file=connection_file,
            remote_dir=remote_dir,
            label=label,
            tunnel_id=tunnel_id,
        )

    @property
    def label(self) -> str:
        """The provider's label."""
        return self._label

    @property
    def status_polling_interval(self) -> int:
        """Seconds between status polls."""
        return 5

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl.sidecar") -> str:
        """Start one block on the head node.

        Parameters
        ----------
        command : str
            The worker command from the executor.
        tasks_per_node : int
            Worker pools per node.
        job_name : str
            Name of the block.

        Returns
        -------
        str
            The block id.
        """
        job_name = f"{job_name}.{time.time()}"
        try:
            command = self.link.prepare_command(command)
        except Exception as e:
            raise _submit_exception(job_name, f"Executor `{self.executor_label}`: {e}") from e
        script = f"{self.worker_init}\nexport JOBNAME={job_name}\n" + self.launcher(
            command, tasks_per_node, self.nodes_per_block
        )
        params: dict[str, Any] = {
            "target": self.target,
            "script": script,
            "owner": self.owner,
            "owner_pid": os.getpid(),
            "label": self.executor_label,
            "cwd": self.remote_dir,
        }
        out = err = None
        if self.script_dir:
            out = os.path.join(os.path.abspath(self.script_dir), f"{job_name}.out")
            err = os.path.join(os.path.abspath(self.script_dir), f"{job_name}.err")
            params["stdout_path"], params["stderr_path"] = out, err
        try:
            info = self.link.client.call("executors.blocks.start", params, timeout=self.cmd_timeout)
        except Exception as e:
            raise _submit_exception(
                job_name,
                f"Executor `{self.executor_label}`: cannot start a worker block on "
                f"`{self.target}`: {e}",
            ) from e
        block_id = str(info["id"])
        self.resources[block_id] = {
            "job_id": block_id,
            "status": JobStatus(JobState.RUNNING),
            "stdout": out,
            "stderr": err,
            "dial_port": PoolLink.command_port(command),
        }
        log.debug("started block %s on %s (pgid %s)", block_id, self.target, info.get("pgid"))
        return block_id

    def status(self, job_ids: Sequence[object]) -> list[JobStatus]:
        """Ask the sidecar for the blocks' states; cancel blocks the worker tunnel left.

        Parameters
        ----------
        job_ids : sequence
            Block ids from :meth:`submit`.

        Returns
        -------
        list of JobStatus
            One per id.
        """
        live = [str(j) for j in job_ids if not self.resources[j]["status"].terminal]
        if live:
            res = self.link.client.call("executors.blocks.status", ids=live)
            for b in res["blocks"]:
                r = self.resources[b["id"]]
                state = _STATES.get(b["state"], JobState.UNKNOWN)
                message = None
                if state == JobState.FAILED:
                    message = (b.get("tail") or "").strip()[-2000:] or None
                r["status"] = JobStatus(
                    state,
                    message=message,
                    exit_code=b.get("exit_code"),
                    stdout_path=r["stdout"],
                    stderr_path=r["stderr"],
                )
        running = {
            str(j): self.resources[j]["dial_port"]
            for j in job_ids
            if not self.resources[j]["status"].terminal
        }
        moved = self.link.stranded(running)
        if moved:
            self.cancel(moved)
        return [self.resources[j]["status"] for j in job_ids]

    def cancel(self, job_ids: Sequence[object]) -> list[bool]:
        """Kill the blocks' process groups on the head node.

        Parameters
        ----------
        job_ids : sequence
            Block ids from :meth:`submit`.

        Returns
        -------
        list of bool
            Whether each block is gone.
        """
        ids = [str(j) for j in job_ids]
        if not ids:
            return []
        res = self.link.client.call("executors.blocks.cancel", ids=ids, timeout=60)
        for j, ok in zip(ids, res["cancelled"], strict=False):
            if ok and j in self.resources:
                self.resources[j]["status"] = JobStatus(JobState.CANCELLED)
        return [bool(x) for x in res["cancelled"]]


class _SchedulerProvider:
    """A Parsl batch provider whose commands and scripts go to the pool's head node.

    The Slurm and PBS Pro providers are this class on top of Parsl's own provider: Parsl builds
    the script, the submit, status and cancel commands and parses their output; this class runs
    the commands over the sidecar's SSH connection, copies the script and the job output, and
    records each job with the sidecar. A subclass names the scheduler in class attributes.
    """

    #: Parsl's provider for the scheduler (``SlurmProvider``): scripts, commands, parsing.
    _parsl_provider: ClassVar[type[Any]]
    #: The submit command, as messages name it (``sbatch``).
    _submit_command: ClassVar[str]
    #: The scheduler's name in the sidecar's job record (``scheduler_job`` resources).
    _scheduler: ClassVar[str]

    link: PoolLink
    script_dir: str | None
    executor_label: str
    resources: dict[str, Any]
    cmd_timeout: int

    def __init__(
        self,
        target: str,
        *,
        remote_dir: str = "~/parsl-sidecar",
        remote_script_dir: str | None = None,
        label: str = "",
        client: Client | None = None,
        connection_file: str | None = None,
        tunnel_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        require_supported_parsl()
        if self._parsl_provider is SlurmProvider:
            kwargs = slurm_keywords(kwargs)
        self.link = PoolLink(
            target,
            client=client,
            connection_file=connection_file,
            remote_dir=remote_dir,
            label=label,
            tunnel_id=tunnel_id,
        )
        self.executor_label = label
        self._remote_script_dir = remote_script_dir or f"{remote_dir.rstrip('/')}/submit_scripts"
        self._fetched: set[str] = set()
        self._last_exit = threading.local()  # per thread: the exit code of the last command
        # execute_wait needs these should Parsl's __init__ run a command (SlurmProvider's runs
        # `sacct -X`) before its own base sets them
        self.cmd_timeout = int(kwargs.get("cmd_timeout", 10))
        self.script_dir = None
        self._parsl_provider.__init__(self, **kwargs)

    def _submit(self, command: str, tasks_per_node: int, job_name: str) -> str:
        """Stage the certificates, write the script on the head node and submit it there."""
        self._last_exit.code = None
        try:
            command = self.link.prepare_command(command)
            job_id: str | None = self._parsl_provider.submit(
                self, command, tasks_per_node, job_name
            )
        except Exception as e:
            raise self._submit_error(job_name, e) from e
        if not job_id:
            raise _submit_exception(
                job_name, f"Executor `{self.executor_label}`: {self._submit_command} gave no job id"
            )
        self.resources[job_id]["dial_port"] = PoolLink.command_port(command)
        self._record_job(job_id, self._scheduler)
        return job_id

    @property
    def status_polling_interval(self) -> int:
        """Seconds between status polls (one command over the kept SSH connection)."""
        return 20

    def _status(self) -> None:
        self._parsl_provider._status(self)
        self._cancel_stranded()
        self._fetch_output()

    def _cancel_stranded(self) -> None:
        """Cancel the jobs whose workers dial a port the worker tunnel has left."""
        running = {
            j: r.get("dial_port") for j, r in self.resources.items() if not r["status"].terminal
        }
        moved = self.link.stranded(running)
        if moved:
            self.cancel(moved)  # type: ignore[attr-defined]

    def _record_job(self, job_id: str, scheduler: str) -> None:
        """Record a submitted scheduler job with the sidecar's job (``$PARSL_SIDECAR_JOB``).

        ``parsl-sidecar kill`` and the end of ``parsl-sidecar run`` then cancel it (one
        scancel/qdel per pool), and so does the pool's watchdog if the sidecar dies.
        """
        job = os.environ.get("PARSL_SIDECAR_JOB")
        if not job:
            return
        resource: dict[str, Any] = {
            "kind": "scheduler_job",
            "target": self.link.target,
            "scheduler": scheduler,
            "id": str(job_id),
        }
        if self.executor_label:
            resource["label"] = self.executor_label
        try:
            self.link.client.call("jobs.register_resource", job=job, resource=resource)
        except Exception as e:  # the block runs; only the job's cleanup will not know it
            log.warning("could not record %s job %s with job %s: %s", scheduler, job_id, job, e)

    @property
    def remote_script_dir(self) -> str:
        """Absolute directory on the pool for submit scripts and job output."""
        return self.link.absolute(self._remote_script_dir)

    def _to_remote(self, text: str) -> str:
        local = self.script_dir
        if not local:
            return text
        return text.replace(os.path.abspath(local), self.remote_script_dir)

    def execute_wait(self, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        """Run a scheduler command on the head node (Parsl calls this for sbatch, squeue...)."""
        t = self.cmd_timeout if timeout is None else timeout
        rc, out, err = self.link.exec(self._to_remote(cmd), timeout=t)
        self._last_exit.code = rc
        return rc, out, err

    def _write_submit_script(
        self, template: str, script_filename: str, job_name: str, configs: dict[str, Any]
    ) -> None:
        super()._write_submit_script(template, script_filename, job_name, configs)  # type: ignore[misc]
        with open(script_filename) as f:
            text = f.read()
        self.link.put_file(self._to_remote(script_filename), self._to_remote(text), mode=0o700)

    def _fetch_output(self) -> None:
        """Copy the output of jobs that ended to the local paths Parsl reads."""
        for job_id, r in self.resources.items():
            st = r.get("status")
            if st is None or not st.terminal or job_id in self._fetched:
                continue
            self._fetched.add(job_id)
            for key in ("job_stdout_path", "job_stderr_path"):
                path = r.get(key)
                if not path:
                    continue
                rc, out, _err = self.link.exec(
                    f"tail -c 65536 {shell_path(self._to_remote(path))} 2>/dev/null", timeout=30
                )
                if rc == 0:
                    try:
                        with open(path, "w") as f:
                            f.write(out)
                    except OSError:
                        pass

    def _submit_error(self, job_name: str, e: Exception) -> SubmitException:
        failed = (
            f"Executor `{self.executor_label}`: {self._submit_command} on pool "
            f"`{self.link.target}` failed"
        )
        if isinstance(e, SubmitException):
            out = (e.stderr or "").strip() or (e.stdout or "").strip() or e.message
            # PBSProProvider raises SubmitException without the exit code: qsub's is the
            # last command this thread ran
            code = e.retcode if e.retcode is not None else getattr(self._last_exit, "code", None)
            return _submit_exception(
                job_name, f"{failed} (exit {code}): {out}", e.stdout, e.stderr, code
            )
        return _submit_exception(job_name, f"{failed}: {e}")


class SidecarSlurmProvider(_SchedulerProvider, SlurmProvider):  # type: ignore[misc]
    """Parsl's SlurmProvider with sbatch, squeue/sacct and scancel run on the head node.

    Parameters
    ----------
    target : str
        SSH target of the head node.
    remote_dir : str
        Working directory on the pool (certificates go under it).
    remote_script_dir : str, optional
        Where submit scripts and job output go on the pool (default
        ``<remote_dir>/submit_scripts``); it must be visible to the compute nodes.
    label : str
        The executor's label, for messages.
    client, connection_file
        The sidecar to use (default: the one of ``$PARSL_SIDECAR_CONNECTION_FILE``).
    tunnel_id : str, optional
        The worker tunnel (``TUNNEL_ID``): when a reconnect moves its port, new jobs get the
        new port and jobs started with the old one are cancelled (Parsl replaces them).
    **kwargs
        Everything SlurmProvider takes (partition, account, walltime, launcher...).
    """

    _parsl_provider = SlurmProvider
    _submit_command = "sbatch"
    _scheduler = "slurm"

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl.slurm") -> str:
        """Stage the certificates, write the script on the head node and sbatch it there."""
        return self._submit(command, tasks_per_node, job_name)

    def execute_wait(self, cmd: str, timeout: float | None = None) -> tuple[int, str, str]:
        """As the base does; squeue on jobs Slurm has already forgotten answers an empty queue.

        squeue asked only for jobs that Slurm has already purged (MinJobAge past, e.g. while the
        connection was down) exits 1, and Parsl then never updates them: the block stays
        RUNNING for ever and is never replaced (the soak stalled so). An empty answer is what
        Parsl reads as COMPLETED.
        """
        rc, out, err = super().execute_wait(cmd, timeout)
        if rc != 0 and cmd.startswith("squeue") and "Invalid job id specified" in err:
            return 0, "", err
        return rc, out, err


class SidecarPBSProProvider(_SchedulerProvider, PBSProProvider):  # type: ignore[misc]
    """Parsl's PBSProProvider with qsub, qstat and qdel run on the head node.

    Parameters
    ----------
    target : str
        SSH target of the head node.
    remote_dir : str
        Working directory on the pool.
    remote_script_dir : str, optional
        Where submit scripts and job output go on the pool (default
        ``<remote_dir>/submit_scripts``).
    label : str
        The executor's label, for messages.
    client, connection_file
        The sidecar to use.
    tunnel_id : str, optional
        The worker tunnel, as for :class:`SidecarSlurmProvider`.
    **kwargs
        Everything PBSProProvider takes (queue, account, select_options, walltime...).
    """

    _parsl_provider = PBSProProvider
    _submit_command = "qsub"
    _scheduler = "pbspro"

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl") -> str:
        """Stage the certificates, write the script on the head node and qsub it there."""
        return self._submit(command, tasks_per_node, job_name)
