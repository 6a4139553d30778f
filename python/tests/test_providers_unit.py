"""Pure parts of the remote providers: the launch command and path handling (no pool)."""

from __future__ import annotations

import inspect

from parsl.executors import HighThroughputExecutor
from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD

from parsl_sidecar._parsl_compat import parsl_version, version_tuple
from parsl_sidecar._pool import PoolLink, shell_path
from parsl_sidecar.config import local_versions
from parsl_sidecar.providers import pool_launch_cmd


def fields(fmt: str) -> set[str]:
    import string

    return {f for _, f, _, _ in string.Formatter().parse(fmt) if f}


def test_launch_cmd_has_the_default_fields_but_names_the_pool_side_address() -> None:
    cmd = pool_launch_cmd("10.1.2.3", 51234)
    # every field of Parsl's default command except the interchange's own address/port
    assert fields(cmd) == fields(DEFAULT_LAUNCH_CMD) - {"addresses", "worker_port"}
    assert cmd.startswith("process_worker_pool.py ")
    assert " -a 10.1.2.3 " in cmd and " --port=51234 " in cmd
    py = pool_launch_cmd("127.0.0.1", 5, python="/opt/my env/bin/python")
    assert py.startswith(
        "'/opt/my env/bin/python' -m parsl.executors.high_throughput.process_worker_pool "
    )


def test_htex_formats_the_launch_cmd() -> None:
    htex = HighThroughputExecutor(
        label="x",
        address="127.0.0.1",
        worker_port=5000,
        launch_cmd=pool_launch_cmd("10.0.0.9", 6000),
    )
    htex.cert_dir = "/tmp/certs"
    htex.logconf_path = None
    htex.initialize_scaling()
    assert " -a 10.0.0.9 " in htex.launch_cmd and " --port=6000 " in htex.launch_cmd
    assert "--cert_dir /tmp/certs " in htex.launch_cmd
    assert "--block_id={block_id}" in htex.launch_cmd


def test_parsl_facts_this_code_relies_on() -> None:
    sig = inspect.signature(HighThroughputExecutor.__init__).parameters
    assert "worker_port" in sig and "worker_ports" not in sig
    # encrypted by default from 2026.01.19 on; parsl_config asks for it on every release
    newer = version_tuple(parsl_version()) >= (2026, 1, 19)
    assert sig["encrypted"].default is newer
    assert "--cert_dir {cert_dir}" in DEFAULT_LAUNCH_CMD and "-a {addresses}" in DEFAULT_LAUNCH_CMD


def test_shell_path_and_cert_rewrite() -> None:
    assert shell_path("~/a b") == "\"$HOME\"/'a b'"
    assert shell_path("/x/y") == "/x/y"
    link = PoolLink("local", remote_dir="/tmp/x", label="l")
    # a local pool uses the certificates where they are
    assert link.prepare_command("w --cert_dir /r/certs --x") == "w --cert_dir /r/certs --x"
    assert link.prepare_command("w --cert_dir None --x") == "w --cert_dir None --x"


def test_local_versions() -> None:
    v = local_versions()
    assert v["python"].count(".") == 2 and v["parsl"]


def test_release_at_exit_does_not_wait_for_a_stopped_sidecar() -> None:
    """parsl_config's atexit release gives up at once when the sidecar is already gone."""
    import time

    from sidecar_proc import running_sidecar

    import parsl_sidecar
    from parsl_sidecar.config import _releaser

    with running_sidecar("ipc") as sc:
        client = parsl_sidecar.connect(sc.connection_file, timeout=30)
        release = _releaser(client, "gone-owner")
        release()  # alive: releases (nothing to release) and returns
        sc.stop()
        t0 = time.monotonic()
        release()
        elapsed = time.monotonic() - t0
        client.close()
    assert elapsed < 5, f"release waited {elapsed:.1f} s for a stopped sidecar"
