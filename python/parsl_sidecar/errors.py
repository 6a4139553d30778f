"""Exceptions raised by parsl_sidecar, one class per family of the sidecar's stable error codes.

Every failure is a :class:`SidecarError` carrying the same string ``code`` as the sidecar's
``src/error-codes.ts`` (``except SidecarError as e: e.code`` always works); a few codes have their
own subclass, the others share their family's, so that they can be caught by type, and every code
is mapped by :func:`error_from_code`. ``ERROR_CODES`` and each code's family come from the
generated ``_codes`` module.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ._codes import CODE_FAMILY, ERROR_CODES, FAMILY_PREFIXES

__all__ = [
    "ERROR_CODES",
    "AlreadyRunning",
    "EnvError",
    "ExecutorsError",
    "InvalidParams",
    "JobError",
    "SSHError",
    "ShuttingDown",
    "SidecarError",
    "SidecarTimeout",
    "SidecarUnreachable",
    "StagingError",
    "TunnelError",
    "UnknownMethod",
    "VersionMismatch",
    "error_class_for",
    "error_from_code",
]


class SidecarError(Exception):
    """An error reported by the sidecar or by this client, with a stable string ``code``.

    Parameters
    ----------
    message : str
        What went wrong and how to fix it.
    code : str, optional
        The stable error code (see ``ERROR_CODES``); defaults to the class's own code.
    data : dict, optional
        Structured details sent by the sidecar (for example ``issues`` for ``INVALID_PARAMS``).

    Attributes
    ----------
    code : str
        The stable error code, e.g. ``"SSH_AUTH"``.
    data : dict
        Structured details; empty when there are none.
    """

    default_code: ClassVar[str] = "INTERNAL"

    def __init__(
        self, message: str, code: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: str = code if code is not None else self.default_code
        self.data: dict[str, Any] = dict(data) if data else {}

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Parsl pickles exceptions raised in apps; keep code and data across processes.
        return (type(self), (self.message, self.code, self.data))


class SidecarTimeout(SidecarError, TimeoutError):
    """No reply within the call's timeout (code ``TIMEOUT``)."""

    default_code = "TIMEOUT"


class VersionMismatch(SidecarError):
    """The sidecar speaks another protocol version (code ``VERSION_MISMATCH``)."""

    default_code = "VERSION_MISMATCH"


class SidecarUnreachable(SidecarError, ConnectionError):
    """No usable sidecar: no or bad connection file, or the client is closed.

    Codes ``UNREACHABLE`` and ``BAD_CONNECTION_FILE``.
    """

    default_code = "UNREACHABLE"


class InvalidParams(SidecarError, ValueError):
    """The call's params failed validation; the message names each field (``INVALID_PARAMS``)."""

    default_code = "INVALID_PARAMS"


class UnknownMethod(SidecarError):
    """No such RPC method (code ``UNKNOWN_METHOD``); ``sidecar.describe`` lists them."""

    default_code = "UNKNOWN_METHOD"


class ShuttingDown(SidecarError):
    """The sidecar shut down before the call finished (code ``SHUTTING_DOWN``)."""

    default_code = "SHUTTING_DOWN"


class AlreadyRunning(SidecarError):
    """A sidecar is already running in that runtime directory (code ``ALREADY_RUNNING``)."""

    default_code = "ALREADY_RUNNING"


class SSHError(SidecarError):
    """SSH configuration, connection, authentication, host key or exec failures (``SSH_*``)."""

    default_code = "SSH_CONNECT"


class TunnelError(SidecarError):
    """A tunnel failed or does not exist (``TUNNEL_*``)."""

    default_code = "TUNNEL_FAILED"


class ExecutorsError(SidecarError):
    """executors.json, pool resolution and remote provider failures.

    Codes ``EXECUTORS_INVALID``, ``POOL_UNREACHABLE``, ``VERSION_SKEW``, ``RESOLVER_FAILED``,
    ``PROVIDER_FAILED``.
    """

    default_code = "EXECUTORS_INVALID"


class StagingError(SidecarError):
    """A file transfer failed or was refused (``STAGING_*``)."""

    default_code = "STAGING_FAILED"


class EnvError(SidecarError):
    """A remote environment could not be created or used (``ENV_*``)."""

    default_code = "ENV_FAILED"


class JobError(SidecarError):
    """A job is unknown, not ours or already finished (``JOB_*``, ``COMMAND_NOT_FOUND``)."""

    default_code = "JOB_NOT_FOUND"


# Codes with a class of their own; any other code gets its family's class (_codes.CODE_FAMILY).
_OWN_CLASS: dict[str, type[SidecarError]] = {
    "TIMEOUT": SidecarTimeout,
    "VERSION_MISMATCH": VersionMismatch,
    "UNREACHABLE": SidecarUnreachable,
    "BAD_CONNECTION_FILE": SidecarUnreachable,
    "INVALID_PARAMS": InvalidParams,
    "UNKNOWN_METHOD": UnknownMethod,
    "SHUTTING_DOWN": ShuttingDown,
    "ALREADY_RUNNING": AlreadyRunning,
}

# The families with a class; the others (protocol, daemon, web) raise SidecarError itself.
_FAMILY_CLASS: dict[str, type[SidecarError]] = {
    "ssh": SSHError,
    "tunnels": TunnelError,
    "executors": ExecutorsError,
    "staging": StagingError,
    "env": EnvError,
    "jobs": JobError,
}


def _family_of(code: str) -> str | None:
    family = CODE_FAMILY.get(code)
    if family is not None:
        return family
    # a code added by a newer sidecar: its prefix names its family
    for prefix, named in FAMILY_PREFIXES:
        if code.startswith(prefix):
            return named
    return None


def error_class_for(code: str) -> type[SidecarError]:
    """Return the exception class used for an error code.

    Parameters
    ----------
    code : str
        A stable error code, known or not.

    Returns
    -------
    type[SidecarError]
        The most specific class for ``code``; :class:`SidecarError` for any other code.
    """
    cls = _OWN_CLASS.get(code)
    if cls is not None:
        return cls
    family = _family_of(code)
    return _FAMILY_CLASS.get(family, SidecarError) if family is not None else SidecarError


def error_from_code(code: str, message: str, data: dict[str, Any] | None = None) -> SidecarError:
    """Build the exception for an error reply.

    Parameters
    ----------
    code : str
        The reply's error code; unknown codes are kept as they are.
    message : str
        The reply's message.
    data : dict, optional
        The reply's structured details.

    Returns
    -------
    SidecarError
        An instance of :func:`error_class_for` ``(code)`` whose ``.code`` is ``code``.
    """
    return error_class_for(code)(message, code, data)
