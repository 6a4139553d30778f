"""The error classes: every code of src/error-codes.ts maps to a class carrying it, pickled too."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest

from parsl_sidecar import errors
from parsl_sidecar.errors import (
    ERROR_CODES,
    ExecutorsError,
    InvalidParams,
    SidecarError,
    SidecarTimeout,
    SidecarUnreachable,
    SSHError,
    StagingError,
    error_class_for,
    error_from_code,
)

ERRORS_TS = Path(__file__).resolve().parents[2] / "src" / "error-codes.ts"


def ts_codes() -> list[str]:
    text = ERRORS_TS.read_text()
    block = text.split("export const ERROR_CODE_TABLE = [", 1)[1].split("] as const", 1)[0]
    return re.findall(r'code: "([A-Z0-9_]+)"', block)


def test_codes_mirror_src_errors_ts() -> None:
    assert list(ERROR_CODES) == ts_codes(), "update ERROR_CODES in parsl_sidecar/errors.py"


@pytest.mark.parametrize("code", ERROR_CODES)
def test_every_code_builds_an_error_carrying_it(code: str) -> None:
    e = error_from_code(code, f"something about {code}", {"k": 1})
    assert isinstance(e, SidecarError)
    assert e.code == code and e.data == {"k": 1} and str(e) == f"something about {code}"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("TIMEOUT", SidecarTimeout),
        ("UNREACHABLE", SidecarUnreachable),
        ("BAD_CONNECTION_FILE", SidecarUnreachable),
        ("INVALID_PARAMS", InvalidParams),
        ("SSH_AUTH", SSHError),
        ("SSH_SOMETHING_NEW", SSHError),
        ("STAGING_NO_SPACE", StagingError),
        ("EXECUTORS_INVALID", ExecutorsError),
        ("VERSION_MISMATCH", errors.VersionMismatch),
        ("UNKNOWN_METHOD", errors.UnknownMethod),
        ("ENV_LOCKED", errors.EnvError),
        ("JOB_NOT_OWNED", errors.JobError),
        ("TUNNEL_FAILED", errors.TunnelError),
    ],
)
def test_codes_map_to_their_classes(code: str, cls: type[SidecarError]) -> None:
    assert error_class_for(code) is cls
    assert type(error_from_code(code, "m")) is cls


def test_unknown_code_is_kept() -> None:
    e = error_from_code("SOMETHING_ELSE", "m")
    assert type(e) is SidecarError and e.code == "SOMETHING_ELSE"


def test_default_codes_and_builtin_bases() -> None:
    assert SidecarTimeout("x").code == "TIMEOUT"
    assert isinstance(SidecarTimeout("x"), TimeoutError)
    assert isinstance(SidecarUnreachable("x"), ConnectionError)
    assert isinstance(InvalidParams("x"), ValueError)
    assert SidecarError("x").code == "INTERNAL" and SidecarError("x").data == {}


@pytest.mark.parametrize("code", ["TIMEOUT", "BAD_CONNECTION_FILE", "SSH_AUTH", "WHATEVER"])
def test_errors_survive_pickling(code: str) -> None:
    e = error_from_code(code, "boom", {"host": "h"})
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is type(e)
    assert (back.code, back.data, str(back)) == (code, {"host": "h"}, "boom")
    assert repr(back) == repr(e)
