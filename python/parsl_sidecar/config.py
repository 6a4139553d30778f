"""A Parsl ``Config`` from an executors.json: one HighThroughputExecutor per pool.

::

    import parsl
    from parsl_sidecar import parsl_config

    with parsl.load(parsl_config("executors.json")):
        ...

:func:`parsl_config` asks the sidecar to complete the file (free interchange port here, the
pool-side port and address workers dial, the worker tunnel and relay), runs the preflight
(the pool answers, its Python minor and Parsl versions equal this machine's, RUN_DIR and
WORKER_LOGDIR_ROOT are writable, the tunnel accepts connections) and builds the executors:
the interchange binds 127.0.0.1 only, the tunnel carries the workers to it, and the worker
command names the pool-side address and port explicitly.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import platform
import sys
from typing import Any

import parsl
from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.launchers import (
    AprunLauncher,
    GnuParallelLauncher,
    JsrunLauncher,
    MpiExecLauncher,
    SimpleLauncher,
    SingleNodeLauncher,
    SrunLauncher,
)
from parsl.launchers.base import Launcher
from parsl.providers.base import ExecutionProvider

from ._block_errors import tolerate_single_failures
from ._parsl_compat import htex_keywords, require_supported_parsl
from ._pool import PoolLink
from .client import Client, connect
from .errors import ExecutorsError, SidecarError
from .prompts import DEFAULT, PromptCallable
from .providers import (
    SidecarLocalProvider,
    SidecarPBSProProvider,
    SidecarSlurmProvider,
    pool_launch_cmd,
)

__all__ = ["default_owner", "executors_config", "local_versions", "parsl_config"]

log = logging.getLogger("parsl_sidecar.config")

_LAUNCHERS: dict[str, type[Launcher]] = {
    "single_node": SingleNodeLauncher,
    "srun": SrunLauncher,
    "simple": SimpleLauncher,
    "mpiexec": MpiExecLauncher,
    "aprun": AprunLauncher,
    "jsrun": JsrunLauncher,
    "gnu_parallel": GnuParallelLauncher,
}


def local_versions() -> dict[str, str]:
    """This interpreter's Python and Parsl versions, as the preflight compares them.

    Returns
    -------
    dict
        ``{"python": "3.11.2", "parsl": "2026.10.26"}``.
    """
    return {"python": platform.python_version(), "parsl": str(parsl.__version__)}


def default_owner() -> str:
    """Who holds this workflow's tunnels and blocks in the sidecar.

    Returns
    -------
    str
        The job id under ``parsl-sidecar run`` (``$PARSL_SIDECAR_JOB``; the job's teardown
        releases them), else ``pid:<this process>`` (released when this process exits; the
        sidecar also notices the process gone).
    """
    job = os.environ.get("PARSL_SIDECAR_JOB")
    return job if job else f"pid:{os.getpid()}"


def _provider(r: dict[str, Any], link: PoolLink, client: Client, owner: str) -> ExecutionProvider:
    launcher = _LAUNCHERS[str(r["launcher"])]()
    common: dict[str, Any] = {
        "nodes_per_block": r["nodesPerBlock"],
        "init_blocks": r["initBlocks"],
        "min_blocks": r["minBlocks"],
        "max_blocks": r["maxBlocks"],
        "parallelism": r["parallelism"],
        "worker_init": r["workerInit"],
        "launcher": launcher,
    }
    where: dict[str, Any] = {"label": r["label"], "client": client, "tunnel_id": r.get("tunnelId")}
    if r["provider"] == "local":
        return SidecarLocalProvider(
            r["target"],
            remote_dir=link.absolute(r["runDir"]),
            owner=owner,
            cmd_timeout=max(60, int(r["cmdTimeout"])),
            **where,
            **common,
        )
    options = dict(r["providerOptions"])
    if r.get("walltime"):
        options["walltime"] = r["walltime"]
    cls: type[SidecarSlurmProvider] | type[SidecarPBSProProvider] = (
        SidecarSlurmProvider if r["provider"] == "slurm" else SidecarPBSProProvider
    )
    return cls(
        r["target"],
        remote_dir=link.absolute(r["runDir"]),
        remote_script_dir=link.absolute(r["scriptDir"]),
        cmd_timeout=int(r["cmdTimeout"]),
        **where,
        **common,
        **options,
    )


def executors_config(
    resolved: dict[str, dict[str, Any]],
    client: Client,
    owner: str,
    executor_options: dict[str, dict[str, Any]] | None = None,
) -> list[HighThroughputExecutor]:
    """Build one HighThroughputExecutor per completed, resolved executor.

    Parameters
    ----------
    resolved : dict
        ``resolved`` of ``executors.complete`` (label to settings with defaults applied).
    client : Client
        The sidecar client the providers use.
    owner : str
        Who holds the blocks in the sidecar.
    executor_options : dict, optional
        Extra HighThroughputExecutor keywords per label (they win).

    Returns
    -------
    list of HighThroughputExecutor
        In the order of ``resolved``.
    """
    out: list[HighThroughputExecutor] = []
    for label, r in resolved.items():
        if r.get("interchangePort") is None or r.get("workerPort") is None:
            raise ExecutorsError(
                f"Executor `{label}` is not completed (no INTERCHANGE_PORT/WORKER_PORT)",
                code="EXECUTORS_INVALID",
            )
        link = PoolLink(r["target"], client=client, remote_dir=r["runDir"], label=label)
        python = None if r["python"] == "python3" else str(r["python"])
        kwargs: dict[str, Any] = {
            "label": label,
            "address": "127.0.0.1",
            "worker_port": int(r["interchangePort"]),
            "launch_cmd": pool_launch_cmd(str(r["dialAddress"]), int(r["workerPort"]), python),
            "worker_logdir_root": link.absolute(str(r["workerLogdirRoot"])),
            "cores_per_worker": float(r["coresPerWorker"]),
            "prefetch_capacity": int(r.get("prefetchCapacity", 0)),
            "worker_debug": bool(r["workerDebug"]),
            "heartbeat_period": int(r["heartbeatPeriod"]),
            "heartbeat_threshold": int(r["heartbeatThreshold"]),
            # this interpreter's interchange, whatever the PATH (interchange.py lives in its bin)
            "interchange_launch_cmd": [
                sys.executable,
                "-m",
                "parsl.executors.high_throughput.interchange",
            ],
            "provider": _provider(r, link, client, owner),
            # a block lost on a pool (preempted, killed, its node gone) is replaced, not fatal
            "block_error_handler": tolerate_single_failures,
        }
        if r.get("maxWorkersPerNode") is not None:
            kwargs["max_workers_per_node"] = int(r["maxWorkersPerNode"])
        if r.get("memPerWorker") is not None:
            kwargs["mem_per_worker"] = float(r["memPerWorker"])
        kwargs.update((executor_options or {}).get(label, {}))
        out.append(HighThroughputExecutor(**htex_keywords(**kwargs)))
    return out


def parsl_config(
    executors: str | os.PathLike[str] | None = None,
    *,
    labels: list[str] | None = None,
    connection_file: str | None = None,
    client: Client | None = None,
    owner: str | None = None,
    preflight: bool = True,
    executor_options: dict[str, dict[str, Any]] | None = None,
    prompt: PromptCallable | None = DEFAULT,
    autostart: bool | None = None,
    **overrides: Any,
) -> Config:
    """A Parsl ``Config`` whose executors run their workers on the pools of an executors.json.

    Parameters
    ----------
    executors : str or PathLike, optional
        The executors.json (completed or not; it is not rewritten). Default
        ``$PARSL_SIDECAR_EXECUTORS`` (the copy ``parsl-sidecar run --executors FILE`` completed
        for the job), else ``executors.json``.
    labels : list of str, optional
        Only these executors.
    connection_file : str, optional
        The sidecar's connection file (default ``$PARSL_SIDECAR_CONNECTION_FILE`` or the
        runtime directory's).
    client : Client, optional
        A connected sidecar client (kept open: the providers use it while Parsl runs).
    owner : str, optional
        Who holds the tunnels and blocks (default :func:`default_owner`); released when this
        process exits, and by the sidecar when it sees this process gone.
    preflight : bool
        Check every pool before returning (default True).
    executor_options : dict, optional
        Extra HighThroughputExecutor keywords per label, e.g. ``{"cpu": {"prefetch_capacity": 4}}``.
    prompt : callable or None, optional
        Answers what a pool's login node asks while connecting (a one-time code, a password, a
        key's passphrase), as in :func:`parsl_sidecar.connect`: called with a
        :class:`~parsl_sidecar.Prompt`, returns the answer. Default: ``getpass`` in a terminal,
        else nothing. With ``client`` given, it is added to that client.
    autostart : bool, optional
        With no sidecar named or running, start one owned by this process, as
        :func:`parsl_sidecar.connect` does (default ``$PARSL_SIDECAR_AUTOSTART``, else True).
    **overrides
        Keywords for ``parsl.config.Config`` (``retries``, ``run_dir``, ``strategy``...).

    Returns
    -------
    parsl.config.Config
        One HighThroughputExecutor per label.

    Raises
    ------
    ExecutorsError
        ``PARSL_UNSUPPORTED`` (this machine's Parsl is older than 2025.06.30),
        ``EXECUTORS_INVALID`` (the file), ``POOL_UNREACHABLE``, ``VERSION_SKEW`` (the pool's
        Python minor or Parsl version differs from this machine's; the message names both and
        the executor), ``RESOLVER_FAILED``, ``PROVIDER_FAILED``.
    TunnelError
        A worker tunnel could not be opened or does not carry connections.
    """
    require_supported_parsl()  # before any tunnel is opened for it
    if executors is None:
        executors = os.environ.get("PARSL_SIDECAR_EXECUTORS") or "executors.json"
    path = os.path.abspath(os.fspath(executors))
    if client is None:
        client = connect(connection_file, prompt=prompt, autostart=autostart)
    elif prompt is not DEFAULT and prompt is not None:
        client.answer_prompts(prompt)
    owner = owner or default_owner()
    params: dict[str, Any] = {"path": path, "owner": owner, "owner_pid": os.getpid(), "reuse": True}
    if labels:
        params["labels"] = labels
    done = client.call("executors.complete", params, timeout=900)
    release = _releaser(client, owner)
    try:
        resolved: dict[str, dict[str, Any]] = {
            k: v for k, v in done["resolved"].items() if not labels or k in labels
        }
        for w in done.get("warnings", []):
            log.warning("%s: %s", path, w)
        if preflight:
            client.call(
                "executors.preflight",
                executors=done["executors"],
                labels=list(resolved),
                local=local_versions(),
                timeout=600,
            )
        htex = executors_config(resolved, client, owner, executor_options)
    except BaseException:
        release()
        raise
    atexit.register(release)
    overrides.setdefault("usage_tracking", 0)
    return Config(executors=htex, **overrides)


def _releaser(client: Client, owner: str) -> Any:
    def release() -> None:
        with contextlib.suppress(SidecarError, OSError):
            if not client.closed:
                # a sidecar that already stopped took the owner's tunnels and blocks with it:
                # do not wait out the release's timeout at interpreter exit
                client.call("sidecar.ping", timeout=2)
                client.call("executors.release", owner=owner, timeout=60)

    return release
