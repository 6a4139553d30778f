"""Finding and checking the connection file, without a sidecar."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sidecar_proc import short_tmpdir

import parsl_sidecar
from parsl_sidecar import SidecarUnreachable, VersionMismatch
from parsl_sidecar.connection import (
    Limits,
    default_runtime_dir,
    read_connection_file,
    resolve_connection_file,
)


@pytest.fixture
def tmp() -> Iterator[Path]:
    d = short_tmpdir()
    yield d
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def write(path: Path, content: object, mode: int = 0o600) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    os.chmod(path, mode)
    return path


def valid(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "endpoint": "ipc:///tmp/x.sock",
        "protocol_version": 1,
        "signature_scheme": "hmac-sha256",
        "key": "ab" * 32,
        "pid": os.getpid(),
        "started_at": "2026-01-01T00:00:00.000Z",
        "version": "0.1.0",
    }
    base.update(over)
    return base


def test_default_runtime_dir_order() -> None:
    assert default_runtime_dir({"PARSL_SIDECAR_RUNTIME_DIR": "/a", "XDG_RUNTIME_DIR": "/b"}) == "/a"
    assert default_runtime_dir({"XDG_RUNTIME_DIR": "/run/user/5"}) == "/run/user/5/parsl-sidecar"
    assert default_runtime_dir({}).endswith(f"parsl-sidecar-{os.getuid()}")


def test_resolve_order() -> None:
    env = {"PARSL_SIDECAR_CONNECTION_FILE": "/env.json", "PARSL_SIDECAR_RUNTIME_DIR": "/rt"}
    assert resolve_connection_file("/explicit.json", env) == "/explicit.json"
    assert resolve_connection_file(Path("/p.json"), env) == "/p.json"
    assert resolve_connection_file(None, env) == "/env.json"
    assert resolve_connection_file(None, {"PARSL_SIDECAR_RUNTIME_DIR": "/rt"}) == "/rt/sidecar.json"


def test_missing_file_says_how_to_start_one(tmp: Path) -> None:
    with pytest.raises(SidecarUnreachable) as ei:
        parsl_sidecar.connect(tmp / "nope.json")
    assert ei.value.code == "UNREACHABLE"
    assert "parsl-sidecar serve --detach" in str(ei.value) and "nope.json" in str(ei.value)


def test_connect_uses_the_environment(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARSL_SIDECAR_CONNECTION_FILE", str(tmp / "from-env.json"))
    with pytest.raises(SidecarUnreachable, match=r"from-env\.json"):
        parsl_sidecar.connect()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_group_or_other_readable_file_is_refused(tmp: Path, mode: int) -> None:
    f = write(tmp / "sidecar.json", valid(), mode)
    with pytest.raises(SidecarUnreachable) as ei:
        read_connection_file(f)
    assert ei.value.code == "BAD_CONNECTION_FILE"
    assert f"chmod 600 {f}" in str(ei.value)


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("not json", "JSON"),
        ([1, 2], "JSON object"),
        (valid(endpoint=""), "endpoint"),
        (valid(key="zz"), "key"),
        (valid(pid="12"), "pid"),
        (valid(protocol_version="1"), "protocol_version"),
        (valid(signature_scheme="md5"), "signature_scheme"),
        (valid(features="batch"), "features"),
        (valid(features=[1]), "features"),
        (valid(limits=65536), "`limits`"),
        (valid(limits={"message_bytes": "64KiB"}), "limits.message_bytes"),
        (valid(limits={"pending_bytes": 0}), "limits.pending_bytes"),
        (valid(limits={"message_bytes": True}), "limits.message_bytes"),
    ],
)
def test_malformed_files_name_the_problem(tmp: Path, content: object, names: str) -> None:
    f = write(tmp / "sidecar.json", content)
    with pytest.raises(SidecarUnreachable) as ei:
        read_connection_file(f)
    assert ei.value.code == "BAD_CONNECTION_FILE" and names in str(ei.value)


def test_features_are_read_and_optional(tmp: Path) -> None:
    assert read_connection_file(write(tmp / "a.json", valid())).features == ()
    f = write(tmp / "b.json", valid(features=["batch", "later"]))
    assert read_connection_file(f).features == ("batch", "later")


def test_limits_are_read_and_each_one_missing_is_the_default(tmp: Path) -> None:
    # a file of a sidecar older than published limits: the documented defaults
    assert read_connection_file(write(tmp / "a.json", valid())).limits == Limits(
        16 * 1024 * 1024, 32 * 1024 * 1024
    )
    f = write(tmp / "b.json", valid(limits={"message_bytes": 65536, "pending_bytes": 131072}))
    assert read_connection_file(f).limits == Limits(65536, 131072)
    f = write(tmp / "c.json", valid(limits={"message_bytes": 65536, "later": 1}))
    assert read_connection_file(f).limits == Limits(65536, 32 * 1024 * 1024)


def test_other_protocol_version_is_a_version_mismatch(tmp: Path) -> None:
    f = write(tmp / "sidecar.json", valid(protocol_version=2))
    with pytest.raises(VersionMismatch, match="protocol 2"):
        parsl_sidecar.connect(f)


def test_key_is_not_in_repr(tmp: Path) -> None:
    info = read_connection_file(write(tmp / "sidecar.json", valid()))
    assert info.key == bytes.fromhex("ab" * 32)
    assert "abab" not in repr(info)
