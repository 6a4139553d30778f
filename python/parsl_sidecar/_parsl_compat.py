"""Every difference between the Parsl releases parsl_sidecar supports, in one place.

Supported: 2025.06.30 (the first release with one worker port, Parsl PR #3871) to the newest.
What differs between them (docs/parsl-versions.md):

- ``encrypted`` defaults to False before 2026.01.19: :func:`htex_keywords` always asks for it.
- ``--logconf={logconf}`` is in the worker command from 2026.05.11:
  :func:`worker_launch_cmd` starts from the installed Parsl's own default command.
- ``SlurmProvider(gpus_per_node=, gres=)`` exist from 2026.02.23: :func:`slurm_keywords` turns
  them into ``#SBATCH`` lines for older releases.
- Older releases are refused by :func:`require_supported_parsl`, naming the oldest supported.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import parsl

from .errors import ExecutorsError

__all__ = [
    "OLDEST_PARSL",
    "htex_keywords",
    "parsl_version",
    "require_supported_parsl",
    "slurm_keywords",
    "version_tuple",
    "worker_launch_cmd",
]

#: The first Parsl release with a single worker port (``worker_port``; PR #3871).
OLDEST_PARSL = "2025.06.30"


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"2025.06.30"`` (or ``2025.6.30``, ``2026.10.26+local``) as ``(2025, 6, 30)``.

    Raises
    ------
    ValueError
        Not a Parsl date version (the 1.x and 0.x releases are far older than supported).
    """
    m = re.match(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", version.strip())
    if not m:
        raise ValueError(f"not a Parsl release version: {version!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def parsl_version() -> str:
    """The installed Parsl's version, as it reports itself (``2025.06.30``)."""
    return str(parsl.__version__)


def require_supported_parsl(version: str | None = None) -> None:
    """Refuse a Parsl older than :data:`OLDEST_PARSL`.

    Raises
    ------
    ExecutorsError
        Code ``PARSL_UNSUPPORTED``; the message names both versions and the fix.
    """
    have = parsl_version() if version is None else version
    try:
        old = version_tuple(have) < version_tuple(OLDEST_PARSL)
    except ValueError:
        old = True  # 0.x and 1.x releases
    if old:
        raise ExecutorsError(
            f"Parsl {have} is installed here; parsl_sidecar needs Parsl {OLDEST_PARSL} or newer "
            "(the first release whose HighThroughputExecutor has a single worker_port). "
            f"Fix: pip install 'parsl>={OLDEST_PARSL}' (the pools need the same version).",
            code="PARSL_UNSUPPORTED",
            data={"parsl": have, "oldest_supported": OLDEST_PARSL},
        )


def worker_launch_cmd(exe: str, dial_address: str, worker_port: int) -> str:
    """Parsl's default worker command with the pool-side address, port and interpreter.

    Built from the installed Parsl's ``DEFAULT_LAUNCH_CMD`` so that the fields match what this
    release's executor fills in (``{logconf}`` is only known from 2026.05.11).
    """
    from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

    default = str(DEFAULT_LAUNCH_CMD)
    parts = {
        "process_worker_pool.py ": f"{exe} ",
        "-a {addresses} ": f"-a {dial_address} ",
        "--port={worker_port} ": f"--port={int(worker_port)} ",
    }
    for old in parts:
        if old not in default:
            raise ExecutorsError(
                f"Parsl {parsl_version()}'s worker command has no `{old.strip()}`: "
                "parsl_sidecar cannot point its workers at the tunnel",
                code="PARSL_UNSUPPORTED",
            )
    cmd = default
    for old, new in parts.items():
        cmd = cmd.replace(old, new, 1)
    return cmd


def htex_keywords(**kwargs: Any) -> dict[str, Any]:
    """HighThroughputExecutor keywords for this release.

    ``encrypted=True`` is passed explicitly: it became the default only in 2026.01.19.
    """
    kwargs.setdefault("encrypted", True)
    return kwargs


def _accepts(cls: type[Any], name: str) -> bool:
    return name in inspect.signature(cls.__init__).parameters


def slurm_keywords(options: dict[str, Any]) -> dict[str, Any]:
    """SlurmProvider keywords for this release.

    Before 2026.02.23 SlurmProvider has no ``gpus_per_node`` nor ``gres`` (and takes no
    ``**kwargs``): they become the ``#SBATCH`` lines newer releases write.
    """
    from parsl.providers import SlurmProvider

    out = dict(options)
    extra = ""
    for key, line in (("gpus_per_node", "--gpus-per-node={}"), ("gres", "--gres={}")):
        if key in out and not _accepts(SlurmProvider, key):
            value = out.pop(key)
            if value:
                extra += f"#SBATCH {line.format(value)}\n"
    if extra:
        options_text = str(out.get("scheduler_options") or "")
        if options_text and not options_text.endswith("\n"):
            options_text += "\n"
        out["scheduler_options"] = options_text + extra
    return out
