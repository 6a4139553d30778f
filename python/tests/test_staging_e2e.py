"""Staging end to end: real Parsl (HighThroughputExecutor, local workers), a real sidecar, an
sshd pool on loopback, moto (S3) and fake-gcs-server (GCS). Every scheme in and out, byte for
byte; one app's outputs feed the next; native Files through SidecarStaging; bad input and
faults surface on the call or on its Future."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import parsl
import pytest
import staging_apps
from parsl.app.app import bash_app, python_app
from parsl.config import Config
from parsl.data_provider.file_noop import NoOpFileStaging
from parsl.data_provider.files import File
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider
from staging_bed import BUCKET, StagingBed, staging_bed

from parsl_sidecar import SidecarStaging, StagingError, StagingSpecError, log_app, stage_app

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def bed() -> Iterator[StagingBed]:
    with staging_bed() as b:
        yield b


@pytest.fixture(scope="module")
def dfk(bed: StagingBed) -> Iterator[Any]:
    # Parsl starts interchange.py and process_worker_pool.py from PATH: this venv's bin
    bindir = os.path.dirname(sys.executable)
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{bindir}:{saved}"
    htex = HighThroughputExecutor(
        label="htex_local",
        address="127.0.0.1",
        max_workers_per_node=4,
        cores_per_worker=0.25,
        provider=LocalProvider(
            init_blocks=1, max_blocks=1, worker_init=f"export PYTHONPATH={TESTS}"
        ),
        storage_access=[
            NoOpFileStaging(),
            SidecarStaging(host="pool", directory=str(bed.tmp / "native")),
        ],
    )
    cfg = Config(executors=[htex], run_dir=str(bed.tmp / "runinfo"), strategy="none")
    try:
        with parsl.load(cfg) as d:
            yield d
    finally:
        parsl.clear()
        os.environ["PATH"] = saved


@pytest.fixture
def cwd(bed: StagingBed, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = bed.tmp / "cwd"
    d.mkdir(exist_ok=True)
    monkeypatch.chdir(d)
    return d


def tree(prefix: str) -> dict[str, bytes]:
    files = {f"{prefix}/f{i}.txt": f"{prefix} {i}\n".encode() * (i + 1) for i in range(20)}
    files[f"{prefix}/deep/er/big.bin"] = hashlib.sha256(prefix.encode()).digest() * 50_000
    return files


def spec(kind: str, global_path: str, worker_path: Path | str) -> dict[str, str]:
    return {"type": kind, "global_path": global_path, "worker_path": str(worker_path)}


combine = log_app(stage_app("pool")(bash_app(staging_apps.combine)))
count = log_app(stage_app("local")(python_app(staging_apps.count)))
concat = python_app(staging_apps.concat)
touch = stage_app("pool")(bash_app(staging_apps.touch))
fail = stage_app("pool")(bash_app(staging_apps.fail))


@pytest.mark.timeout(600)
def test_every_scheme_in_and_out_and_chained(
    bed: StagingBed, dfk: Any, cwd: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="parsl_sidecar.apps")
    pool = bed.tmp / "pool"
    (cwd / "in").mkdir(exist_ok=True)
    (cwd / "in" / "a.txt").write_bytes(b"local file\n")
    for rel, body in tree("pwdir").items():
        (cwd / "in" / rel).parent.mkdir(parents=True, exist_ok=True)
        (cwd / "in" / rel).write_bytes(body)
    bed.s3_put("in/b.txt", b"s3 file\n" * 1000)
    for rel, body in tree("s3dir").items():
        bed.s3_put(f"in/{rel}", body)
    bed.gcs_put("in/c.txt", b"gcs file\n" * 3)
    for rel, body in tree("gsdir").items():
        bed.gcs_put(f"in/{rel}", body)

    fut = combine(
        inputs_dict={
            "pw_file": spec("file", "pw://{cwd}/in/a.txt", pool / "in/a.txt"),
            "pw_dir": spec("directory", "pw://{cwd}/in/pwdir", pool / "in/pwdir"),
            "s3_file": spec("file", f"s3://{BUCKET}/in/b.txt", pool / "in/b.txt"),
            "s3_dir": spec("directory", f"s3://{BUCKET}/in/s3dir", pool / "in/s3dir"),
            "gs_file": spec("file", f"gs://{BUCKET}/in/c.txt", pool / "in/c.txt"),
            "gs_dir": spec("directory", f"gs://{BUCKET}/in/gsdir", pool / "in/gsdir"),
        },
        outputs_dict={
            "report": spec("file", "pw://{cwd}/out/report.txt", pool / "out/report.txt"),
            "copy": spec("directory", f"s3://{BUCKET}/out/copy", pool / "out/copy"),
            "summary": spec("file", f"gs://{BUCKET}/out/summary.txt", pool / "out/summary.txt"),
        },
    )
    assert type(fut) is Future
    # the next app takes the first one's Future as a dependency and stages in what it staged out
    local = bed.tmp / "local"
    fut2 = count(
        fut,
        inputs_dict={
            "copy": spec("directory", f"s3://{BUCKET}/out/copy", local / "copy"),
            "summary": spec("file", f"gs://{BUCKET}/out/summary.txt", local / "summary.txt"),
        },
        outputs_dict={
            "final": spec("file", f"file://{cwd}/final.txt", local / "final.txt"),
            "tree": spec("directory", f"gs://{BUCKET}/final/tree", local / "tree"),
        },
    )
    assert fut.result(timeout=300) == 0
    report = b"local file\n" + b"s3 file\n" * 1000 + b"gcs file\n" * 3
    assert (cwd / "out" / "report.txt").read_bytes() == report
    expect_copy = {}
    for prefix, sub in (("pwdir", "pw"), ("s3dir", "s3"), ("gsdir", "gs")):
        for rel, body in tree(prefix).items():
            expect_copy[f"out/copy/{sub}/{rel[len(prefix) + 1 :]}"] = body
    assert sorted(bed.s3_keys("out/copy/")) == sorted(expect_copy)
    for key, body in expect_copy.items():
        assert bed.s3_get(key) == body, key
    assert bed.gcs_get("out/summary.txt") == hashlib.sha256(report).hexdigest().encode() + b"\n"

    assert fut2.result(timeout=300) == len(expect_copy)
    assert (
        cwd / "final.txt"
    ).read_text() == f"{len(expect_copy)} {hashlib.sha256(report).hexdigest()}\n"
    assert sorted(bed.gcs_names("final/tree/")) == sorted(
        k.replace("out/copy/", "final/tree/") for k in expect_copy
    )
    assert bed.gcs_get("final/tree/pw/deep/er/big.bin") == tree("pwdir")["pwdir/deep/er/big.bin"]

    # log_app: the call, the dicts and each transfer, in the workflow's log and the sidecar's
    text = caplog.text
    assert "combine called" in text and "'inputs_dict'" in text and "s3://psc-py/in/b.txt" in text
    assert "staged in s3_dir" in text and "staged out copy" in text and "bytes" in text
    sidecar_log = Path(bed.sidecar.runtime_dir / "sidecar.log").read_text()
    assert '"source":"workflow"' in sidecar_log and "combine: staged out copy" in sidecar_log


@pytest.mark.timeout(300)
def test_native_files_through_sidecar_staging(bed: StagingBed, dfk: Any, cwd: Path) -> None:
    (cwd / "native.txt").write_bytes(b"pw part\n")
    bed.s3_put("native/a.txt", b"s3 part\n")
    bed.gcs_put("native/b.txt", b"gcs part\n")
    fut = concat(
        inputs=[
            File(f"s3://{BUCKET}/native/a.txt"),
            File(f"gs://{BUCKET}/native/b.txt"),
            File("pw://{cwd}/native.txt"),
        ],
        outputs=[File(f"s3://{BUCKET}/native/out.txt"), File(f"gs://{BUCKET}/native/out2.txt")],
    )
    assert fut.result(timeout=120) == len(b"s3 part\ngcs part\npw part\n")
    fut.outputs[0].result(timeout=120)
    assert bed.s3_get("native/out.txt") == b"s3 part\ngcs part\npw part\n"
    # an output consumed by the next app: its DataFuture completes after the copy to S3
    fut2 = concat(inputs=[fut.outputs[0]], outputs=[File("pw://{cwd}/native-again.txt")])
    fut2.outputs[0].result(timeout=120)
    assert (cwd / "native-again.txt").read_bytes() == b"s3 part\ngcs part\npw part\n"


def test_bad_specs_raise_at_the_call(bed: StagingBed, dfk: Any, cwd: Path) -> None:
    before = len(bed.client.call("staging.list_transfers")["transfers"])
    marker = bed.tmp / "bad-spec-ran"
    ok = spec("file", "pw://{cwd}/x", "/tmp/x")
    cases = [
        ({"a": spec("file", "pw://relative/x", "/tmp/x")}, "relative"),
        ({"a": spec("file", "ftp://host/x", "/tmp/x")}, "unknown scheme"),
        ({"a": spec("file", "pw://{cwd}/x", "relative/x")}, "absolute"),
        ({"a": {"type": "file", "global_path": "pw://{cwd}/x"}}, "missing 'worker_path'"),
        ({"a": spec("blob", "pw://{cwd}/x", "/tmp/x")}, "'file' or 'directory'"),
        ({"a": spec("file", "s3://Bad_Bucket/x", "/tmp/x")}, "bucket"),
    ]
    for bad, text in cases:
        with pytest.raises(StagingSpecError, match=text) as e:
            touch(str(marker), inputs_dict=bad)
        assert isinstance(e.value, ValueError) and e.value.code == "STAGING_INVALID"
        with pytest.raises(StagingSpecError, match=text):
            touch(str(marker), inputs_dict={"ok": ok}, outputs_dict=bad)
    assert not marker.exists()
    assert len(bed.client.call("staging.list_transfers")["transfers"]) == before


@pytest.mark.timeout(300)
def test_transfer_failures_fail_the_future(bed: StagingBed, dfk: Any, cwd: Path) -> None:
    marker = bed.tmp / "missing-ran"
    fut = touch(
        str(marker),
        inputs_dict={"model": spec("file", f"s3://{BUCKET}/no/such/key", bed.tmp / "pool/m")},
    )
    exc = fut.exception(timeout=120)
    assert isinstance(exc, StagingError) and exc.code == "STAGING_NOT_FOUND"
    assert "`model`" in str(exc) and f"s3://{BUCKET}/no/such/key" in str(exc)
    assert not marker.exists()  # the app never ran

    marker2 = bed.tmp / "stageout-ran"
    fut = touch(
        str(marker2),
        outputs_dict={
            "result": spec("file", "gs://no-such-bucket-zz/r.txt", bed.tmp / "pool/r.txt")
        },
    )
    exc = fut.exception(timeout=120)
    assert isinstance(exc, StagingError) and exc.code == "STAGING_NOT_FOUND"
    assert "`result`" in str(exc) and "gs://no-such-bucket-zz/r.txt" in str(exc)
    assert marker2.exists()  # the app ran; its stage-out failed

    fut = fail(
        outputs_dict={"result": spec("file", "pw://{cwd}/never.txt", bed.tmp / "pool/never.txt")}
    )
    exc = fut.exception(timeout=120)
    assert exc is not None and not isinstance(exc, StagingError)
    assert not (cwd / "never.txt").exists()  # no stage-out after a failed app


@pytest.mark.timeout(300)
def test_stage_in_does_not_block_the_caller(bed: StagingBed, dfk: Any, cwd: Path) -> None:
    (cwd / "nb.txt").write_bytes(b"x" * 1000)
    marker = bed.tmp / "nb-ran"
    pid = bed.sidecar.proc.pid
    os.kill(pid, signal.SIGSTOP)  # the sidecar answers nothing until SIGCONT
    try:
        fut = touch(
            str(marker),
            inputs_dict={"nb": spec("file", "pw://{cwd}/nb.txt", bed.tmp / "pool/nb.txt")},
        )
        assert not fut.done()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert fut.result(timeout=120) == 0
    assert marker.exists() and (bed.tmp / "pool/nb.txt").read_bytes() == b"x" * 1000


def test_wrappers_keep_the_signature() -> None:
    import inspect

    sig = inspect.signature(combine)
    assert list(sig.parameters) == ["inputs_dict", "outputs_dict", "stdout", "stderr"]
    assert combine.__name__ == "combine" and combine.__wrapped__ is not None
    assert sys.modules["parsl_sidecar"].stage_app is stage_app


@pytest.mark.timeout(300)
def test_host_as_executor_label(
    bed: StagingBed, dfk: Any, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executors = cwd / "labels.json"
    executors.write_text('{"cpu_executor": {"POOL": "some_pool", "SSH_TARGET": "pool"}}\n')
    monkeypatch.setenv("PARSL_SIDECAR_EXECUTORS", str(executors))
    (cwd / "label.txt").write_bytes(b"via label\n")
    labelled = stage_app("cpu_executor")(bash_app(staging_apps.touch))
    marker = bed.tmp / "label-ran"
    dest = bed.tmp / "pool" / "label.txt"
    fut = labelled(str(marker), inputs_dict={"x": spec("file", "pw://{cwd}/label.txt", dest)})
    assert fut.result(timeout=120) == 0
    assert dest.read_bytes() == b"via label\n"
    done = [t for t in bed.client.call("staging.list_transfers")["transfers"] if t["item"] == "x"]
    assert done and done[-1]["dst"] == f"ssh://pool{dest}"
