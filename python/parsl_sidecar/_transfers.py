"""Shared by the decorators and the Parsl staging provider: checking staging specs, naming the
host, the default client, and starting transfers in the sidecar without blocking.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import Client, connect
from .errors import SidecarError, StagingError

__all__ = [
    "StagingSpecError",
    "Transfer",
    "TransferSpec",
    "check_io_dict",
    "default_client",
    "gather",
    "resolve_host",
    "set_default_client",
    "start_transfer",
]

SCHEMES = ("pw", "file", "s3", "gs")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$")


class StagingSpecError(StagingError, ValueError):
    """A staging spec is wrong (relative path, unknown scheme, missing field): raised at the call,
    before anything is submitted. Code ``STAGING_INVALID``; also a ``ValueError``."""

    default_code = "STAGING_INVALID"


@dataclass(frozen=True)
class TransferSpec:
    """One entry of ``inputs_dict``/``outputs_dict``, checked."""

    name: str
    type: str
    global_path: str
    worker_path: str


def _check_global(name: str, which: str, url: Any) -> str:
    def bad(why: str) -> StagingSpecError:
        return StagingSpecError(
            f"{which}[{name!r}]['global_path'] = {url!r}: {why}",
            data={"item": name, "field": "global_path", "value": str(url)},
        )

    if not isinstance(url, str) or not url:
        raise bad("expected a non-empty string such as 'pw://{cwd}/data' or 's3://bucket/key'")
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", url, re.S)
    if not m:
        raise bad("expected a URL with a scheme: pw://, file://, s3:// or gs://")
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in SCHEMES:
        raise bad(f"unknown scheme {scheme + '://'!r}; use pw://, file://, s3:// or gs://")
    if scheme in ("pw", "file"):
        path = rest.replace("{cwd}", "/cwd")
        if path.startswith("localhost/"):
            path = path[len("localhost") :]
        if not path.startswith("/"):
            raise bad(
                "the path is relative; give an absolute path ({cwd} is the workflow's directory)"
            )
    else:
        bucket, _, key = rest.partition("/")
        if not _BUCKET.match(bucket):
            raise bad(f"{bucket!r} is not a valid bucket name")
        if any(seg in (".", "..") for seg in key.split("/")):
            raise bad("the key has '.' or '..' segments")
    return url


def check_io_dict(value: Any, which: str) -> list[TransferSpec]:
    """Check an ``inputs_dict``/``outputs_dict`` and return its entries.

    Parameters
    ----------
    value : Mapping or None
        ``{name: {"type": "file"|"directory", "global_path": URL, "worker_path": "/abs"}}``.
    which : str
        ``"inputs_dict"`` or ``"outputs_dict"`` (for messages).

    Returns
    -------
    list of TransferSpec

    Raises
    ------
    StagingSpecError
        Naming the entry and field: not a mapping, a missing field, a bad type, an unknown
        scheme, a relative path.
    """
    if value is None:
        return []
    if not isinstance(value, Mapping):
        got = type(value).__name__
        raise StagingSpecError(f"{which} must be a dict of name -> spec, got {got}")
    out: list[TransferSpec] = []
    for name, spec in value.items():
        if not isinstance(spec, Mapping):
            raise StagingSpecError(
                f"{which}[{name!r}] must be a dict with type, global_path and worker_path, "
                f"got {spec!r}",
                data={"item": str(name)},
            )
        for field in ("type", "global_path", "worker_path"):
            if field not in spec:
                raise StagingSpecError(
                    f"{which}[{name!r}] is missing {field!r} "
                    "(needs type, global_path and worker_path)",
                    data={"item": str(name), "field": field},
                )
        kind = spec["type"]
        if kind not in ("file", "directory"):
            raise StagingSpecError(
                f"{which}[{name!r}]['type'] must be 'file' or 'directory', got {kind!r}",
                data={"item": str(name), "field": "type"},
            )
        worker = spec["worker_path"]
        if not isinstance(worker, (str, os.PathLike)) or not os.fspath(worker).startswith("/"):
            raise StagingSpecError(
                f"{which}[{name!r}]['worker_path'] = {worker!r}: expected an absolute path",
                data={"item": str(name), "field": "worker_path"},
            )
        url = _check_global(str(name), which, spec["global_path"])
        out.append(TransferSpec(str(name), kind, url, os.fspath(worker)))
    return out


# --- the client ---------------------------------------------------------------------------------

_lock = threading.Lock()
_client: Client | None = None


def set_default_client(client: Client | None) -> None:
    """Use ``client`` for staging (``None``: connect again on next use)."""
    global _client
    with _lock:
        _client = client


def default_client() -> Client:
    """The process's staging client, connected on first use (``PARSL_SIDECAR_CONNECTION_FILE``)."""
    global _client
    with _lock:
        if _client is None or _client.closed:
            _client = connect(timeout=None)
        return _client


# --- hosts --------------------------------------------------------------------------------------

_targets: dict[tuple[str, str], str] = {}


def _executors_file() -> Path | None:
    env = os.environ.get("PARSL_SIDECAR_EXECUTORS")
    path = Path(env) if env else Path.cwd() / "executors.json"
    return path if path.is_file() else None


def resolve_host(host: str, client: Client | None = None) -> str:
    """The ssh target (or ``local``) for ``host``: an executor label of the workflow's
    executors.json (``$PARSL_SIDECAR_EXECUTORS``, else ``./executors.json``), an ssh target, or
    ``local``. Labels are resolved once per process through the sidecar (``executors.check``).
    """
    if host == "local":
        return host
    path = _executors_file()
    if path is None:
        return host
    key = (str(path.resolve()), host)
    if key in _targets:
        return _targets[key]
    try:
        labels = json.loads(path.read_text())
    except (OSError, ValueError):
        return host
    if not isinstance(labels, dict) or host not in labels:
        return host
    res = (client or default_client()).call("executors.check", path=key[0], timeout=60)
    resolved = res.get("resolved", {}).get(host)
    if not resolved:
        problems = "; ".join(e.get("message", "") for e in res.get("errors", []))
        raise StagingSpecError(f"Executor {host!r} in {path} is not valid: {problems}")
    target = str(resolved["target"])
    _targets[key] = target
    return target


# --- transfers ----------------------------------------------------------------------------------


@dataclass
class Transfer:
    """A finished transfer (what ``staging.transfer`` returned), for logs."""

    item: str
    direction: str
    src: str
    dst: str
    bytes: int
    files: int
    skipped: int
    duration_ms: float


def start_transfer(
    client: Client,
    *,
    src: str,
    dst: str,
    kind: str,
    host: str,
    item: str,
    direction: str,
    cwd: str | None = None,
    on_done: Callable[[Transfer], None] | None = None,
) -> Future[Transfer]:
    """Start ``staging.transfer`` in the sidecar and return at once.

    The Future fails with the sidecar's :class:`StagingError` (naming the item, both URLs and
    the cause).
    """
    params: dict[str, Any] = {"src": src, "dst": dst, "type": kind, "host": host, "item": item}
    params["cwd"] = cwd if cwd is not None else os.getcwd()
    raw = client.call_async("staging.transfer", params, timeout=None)
    out: Future[Transfer] = Future()

    def done(f: Future[Any]) -> None:
        exc = f.exception()
        if exc is not None:
            if not isinstance(exc, SidecarError):
                exc = StagingError(f"Staging {item!r} from {src} to {dst} failed: {exc}")
            out.set_exception(exc)
            return
        r = f.result()
        t = Transfer(
            item,
            direction,
            r["src"],
            r["dst"],
            int(r["bytes"]),
            int(r["files"]),
            int(r["skipped"]),
            float(r["duration_ms"]),
        )
        if on_done is not None:
            with contextlib.suppress(Exception):  # a logging hook must not break the transfer
                on_done(t)
        out.set_result(t)

    raw.add_done_callback(done)
    return out


def gather(futures: Sequence[Future[Any]], value: Any) -> Future[Any]:
    """A Future resolving to ``value`` once all ``futures`` succeeded, else to the first error
    (by position)."""
    out: Future[Any] = Future()
    if not futures:
        out.set_result(value)
        return out
    left = [len(futures)]
    lock = threading.Lock()

    def one(_: Future[Any]) -> None:
        with lock:
            left[0] -= 1
            if left[0] > 0:
                return
        for f in futures:
            exc = f.exception()
            if exc is not None:
                out.set_exception(exc)
                return
        out.set_result(value)

    for f in futures:
        f.add_done_callback(one)
    return out
