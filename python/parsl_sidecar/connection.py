"""The sidecar's connection file: where it listens and the key that signs its messages.

Found as the TypeScript side does (docs/protocol.md): an explicit path, else
``$PARSL_SIDECAR_CONNECTION_FILE``, else ``sidecar.json`` in the runtime directory
(``$PARSL_SIDECAR_RUNTIME_DIR``, ``$XDG_RUNTIME_DIR/parsl-sidecar`` or
``/tmp/parsl-sidecar-<uid>``).
A file that group or others can read is refused: it holds the key.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SidecarUnreachable

__all__ = [
    "CONNECTION_ENV",
    "CONNECTION_FILE_NAME",
    "DEFAULT_MESSAGE_BYTES",
    "DEFAULT_PENDING_BYTES",
    "ConnectionInfo",
    "Limits",
    "default_runtime_dir",
    "read_connection_file",
    "resolve_connection_file",
]

CONNECTION_ENV = "PARSL_SIDECAR_CONNECTION_FILE"
CONNECTION_FILE_NAME = "sidecar.json"
_START_HINT = (
    "start one with `parsl-sidecar serve --detach`, "
    "or run your workflow under `parsl-sidecar run -- python ...`"
)
_KEY = re.compile(r"^[0-9a-f]{64}$")
#: The sidecar's default limits (docs/protocol.md, Limits), for files of sidecars that predate
#: publishing them; src/rpc/zmtp/router.ts has the same numbers.
DEFAULT_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_PENDING_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """What the sidecar takes from one connection (docs/protocol.md, Limits).

    Attributes
    ----------
    message_bytes : int
        The largest message (the bytes of its frames); past it the sidecar closes the
        connection, so the client refuses to send a larger one (``RPC_MESSAGE_TOO_LARGE``).
    pending_bytes : int
        Bytes of unfinished messages the sidecar holds across all connections.
    """

    message_bytes: int = DEFAULT_MESSAGE_BYTES
    pending_bytes: int = DEFAULT_PENDING_BYTES


@dataclass(frozen=True)
class ConnectionInfo:
    """The contents of a connection file.

    Attributes
    ----------
    path : str
        Where the file was read from.
    endpoint : str
        The ZeroMQ endpoint, ``ipc://...`` or ``tcp://host:port``.
    key : bytes
        The HMAC-SHA256 key (never printed by ``repr``).
    pid : int
        The sidecar's process id.
    protocol_version : int
        The protocol version the sidecar speaks.
    version : str
        The sidecar's release.
    started_at : str
        ISO 8601 start time.
    log_file : str or None
        The sidecar's JSON log file, when it has one.
    features : tuple of str
        Optional protocol features the sidecar speaks (``"batch"``: docs/protocol.md).
    limits : Limits
        The sidecar's limits on messages; the defaults when the file does not say (an older
        sidecar).
    """

    path: str
    endpoint: str
    key: bytes = field(repr=False)
    pid: int
    protocol_version: int
    version: str = ""
    started_at: str = ""
    log_file: str | None = None
    features: tuple[str, ...] = ()
    limits: Limits = Limits()


def default_runtime_dir(env: Mapping[str, str] | None = None) -> str:
    """Return the per-user runtime directory the sidecar uses by default.

    Parameters
    ----------
    env : Mapping[str, str], optional
        Environment to read (default: ``os.environ``).

    Returns
    -------
    str
        ``$PARSL_SIDECAR_RUNTIME_DIR``, ``$XDG_RUNTIME_DIR/parsl-sidecar`` or
        ``<tmpdir>/parsl-sidecar-<uid>``.
    """
    env = os.environ if env is None else env
    if env.get("PARSL_SIDECAR_RUNTIME_DIR"):
        return env["PARSL_SIDECAR_RUNTIME_DIR"]
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "parsl-sidecar")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"parsl-sidecar-{uid}")


def resolve_connection_file(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Find the connection file to use.

    Parameters
    ----------
    path : str or PathLike, optional
        An explicit path; wins over everything else.
    env : Mapping[str, str], optional
        Environment to read (default: ``os.environ``).

    Returns
    -------
    str
        ``path``, else ``$PARSL_SIDECAR_CONNECTION_FILE``, else ``sidecar.json`` in
        :func:`default_runtime_dir`.
    """
    if path is not None:
        return os.fspath(path)
    env = os.environ if env is None else env
    if env.get(CONNECTION_ENV):
        return env[CONNECTION_ENV]
    return os.path.join(default_runtime_dir(env), CONNECTION_FILE_NAME)


def _bad(path: str, why: str) -> SidecarUnreachable:
    return SidecarUnreachable(
        f"Bad connection file {path}: {why}", "BAD_CONNECTION_FILE", {"path": path}
    )


def read_connection_file(path: str | os.PathLike[str]) -> ConnectionInfo:
    """Read and check a connection file.

    Parameters
    ----------
    path : str or PathLike
        The file to read.

    Returns
    -------
    ConnectionInfo
        The endpoint, key and identity of the sidecar.

    Raises
    ------
    SidecarUnreachable
        Code ``UNREACHABLE`` when there is no such file; ``BAD_CONNECTION_FILE`` when group or
        others can read it (it holds the key) or it is not a valid connection file.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise SidecarUnreachable(
            f"No sidecar connection file at {path} ({e.strerror}); {_START_HINT}",
            "UNREACHABLE",
            {"path": path},
        ) from e
    if st.st_mode & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise _bad(
            path,
            f"it can be read by others (mode {mode:o}) and it holds the signing key. "
            f"Run `chmod 600 {path}` if you trust it, or start a new sidecar.",
        )
    try:
        with open(path, encoding="utf-8") as f:
            raw: Any = json.load(f)
    except (OSError, ValueError) as e:
        raise _bad(path, f"not readable JSON ({e})") from e
    if not isinstance(raw, dict):
        raise _bad(path, f"expected a JSON object, got {type(raw).__name__}")
    return _parse(path, raw)


def _parse(path: str, raw: dict[str, Any]) -> ConnectionInfo:
    endpoint = raw.get("endpoint")
    key = raw.get("key")
    pid = raw.get("pid")
    version = raw.get("protocol_version")
    if not isinstance(endpoint, str) or not endpoint:
        raise _bad(path, f"expected `endpoint` to be a non-empty string, got {endpoint!r}")
    if not isinstance(key, str) or not _KEY.match(key):
        raise _bad(path, "expected `key` to be 64 lowercase hex digits")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise _bad(path, f"expected `pid` to be a positive integer, got {pid!r}")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _bad(path, f"expected `protocol_version` to be an integer, got {version!r}")
    scheme = raw.get("signature_scheme", "hmac-sha256")
    if scheme != "hmac-sha256":
        raise _bad(path, f"expected `signature_scheme` to be 'hmac-sha256', got {scheme!r}")
    log_file = raw.get("log_file")
    features = raw.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise _bad(path, f"expected `features` to be a list of strings, got {features!r}")
    return ConnectionInfo(
        path=path,
        endpoint=endpoint,
        key=bytes.fromhex(key),
        pid=pid,
        protocol_version=version,
        version=str(raw.get("version", "")),
        started_at=str(raw.get("started_at", "")),
        log_file=log_file if isinstance(log_file, str) else None,
        features=tuple(features),
        limits=_limits(path, raw.get("limits", {})),
    )


def _limits(path: str, raw: Any) -> Limits:
    if not isinstance(raw, dict):
        raise _bad(path, f"expected `limits` to be an object, got {raw!r}")
    got: dict[str, int] = {}
    for name in ("message_bytes", "pending_bytes"):
        value = raw.get(name)
        if value is None:
            continue  # each one not given keeps its default
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise _bad(path, f"expected `limits.{name}` to be a positive integer, got {value!r}")
        got[name] = value
    return Limits(**got)
