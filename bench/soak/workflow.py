"""The soak's Parsl workflow (bench/soak.ts runs it under `parsl-sidecar run --executors`).

N tasks spread round-robin over the executors of $PARSL_SIDECAR_EXECUTORS: one in ten staged
(`log_app(stage_app(label)(python_app))`: a file in from pw://, s3:// or gs://, a directory out
to pw:// or s3://), the rest plain python_apps with 0 B to 1 MB arguments. At most --window
tasks are in flight. Every result is checked here: the task's id and the SHA-256 of its
argument; for staged tasks the input's SHA-256 as the worker read it against the source's, and
each output file's SHA-256 as the worker wrote it against the copy at its destination. Each
execution that finishes leaves a marker file (soak_apps.mark): two for one id is a duplicate.

Writes --progress (JSON, replaced atomically: phase, completed, failed) while it runs and
--result (JSON) at the end; exits 0 when every task completed once and every file verified.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from random import Random
from typing import Any

import boto3  # type: ignore[import-untyped]
import parsl
import parsl_sidecar
import soak_apps
from parsl.app.app import python_app
from parsl_sidecar import log_app, parsl_config, stage_app

KIB = 1024
MIB = 1024 * KIB
SCHEMES = ("pw", "s3", "gs")


@dataclass
class Counts:
    submitted: int = 0
    completed: int = 0
    failed: int = 0
    files_verified: int = 0
    files_unverified: int = 0
    bytes_moved: int = 0
    errors: list[str] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.failed += 1
        if len(self.errors) < 20:
            self.errors.append(text[:2000])


def write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def body(scheme: str, size: int) -> bytes:
    """The bytes of an input object (one per scheme and size)."""
    seed = hashlib.sha256(f"soak-in {scheme} {size}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class Stores:
    """This machine's view of the three stores, for inputs and for checking outputs."""

    def __init__(self, bucket: str, local: str) -> None:
        self.bucket = bucket
        self.local = local
        self.s3 = boto3.client("s3")
        self.gcs_endpoint = os.environ["STORAGE_EMULATOR_HOST"].rstrip("/")
        self.project = os.environ.get("GOOGLE_CLOUD_PROJECT", "soak")

    def _gcs(self, method: str, path: str, data: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.gcs_endpoint + path, data=data, method=method)
        req.add_header("Content-Type", "application/octet-stream" if data else "application/json")
        with urllib.request.urlopen(req, timeout=120) as r:
            out: bytes = r.read()
            return out

    def buckets(self) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except Exception:
            self.s3.create_bucket(Bucket=self.bucket)
        try:
            self._gcs("GET", f"/storage/v1/b/{self.bucket}")
        except Exception:
            data = json.dumps({"name": self.bucket}).encode()
            self._gcs("POST", f"/storage/v1/b?project={self.project}", data)

    def put(self, scheme: str, key: str, data: bytes) -> str:
        """Store an input; returns its global_path."""
        if scheme == "pw":
            path = os.path.join(self.local, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
            return f"pw://{path}"
        if scheme == "s3":
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            return f"s3://{self.bucket}/{key}"
        q = urllib.parse.quote(key, safe="")
        self._gcs("POST", f"/upload/storage/v1/b/{self.bucket}/o?uploadType=media&name={q}", data)
        return f"gs://{self.bucket}/{key}"

    def get(self, scheme: str, key: str) -> bytes | None:
        """An output's bytes at its destination, or None when it is not there."""
        try:
            if scheme == "pw":
                with open(os.path.join(self.local, key), "rb") as f:
                    return f.read()
            out: bytes = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return out
        except Exception:
            return None


@dataclass
class Input:
    scheme: str
    size: int
    url: str
    sha: str


def make_inputs(stores: Stores, run: str, big: bool) -> dict[tuple[str, int], Input]:
    """One object per scheme and size: 1 KiB to 256 KiB, 4 MiB, and 64 MiB for full runs."""
    sizes = [KIB << j for j in range(9)] + [4 * MIB] + ([64 * MIB] if big else [])
    out = {}
    for scheme in SCHEMES:
        for size in sizes:
            data = body(scheme, size)
            url = stores.put(scheme, f"in/{run}/{scheme}-{size}.bin", data)
            out[(scheme, size)] = Input(scheme, size, url, hashlib.sha256(data).hexdigest())
    return out


def staged_shape(k: int, n_staged: int, big: bool) -> tuple[str, int, list[int], str]:
    """The k-th staged task: input scheme and size, output file sizes, output scheme."""
    large = {n_staged // 4: "s3", n_staged // 2: "gs", (3 * n_staged) // 4: "pw"}
    if big and k in large:
        scheme, size = large[k], 64 * MIB
    elif k % 50 == 7:
        scheme, size = SCHEMES[k % 3], 4 * MIB
    else:
        scheme, size = SCHEMES[k % 3], KIB << (k % 9)
    outs = [KIB << (k % 7), 4096, 100]
    return scheme, size, outs, ("pw", "s3")[k % 2]


def payload(seed: int, i: int) -> bytes:
    """A plain task's argument: mostly under 1 KiB, one in four up to 64 KiB, one in twenty up
    to 1 MB, one in fifty empty."""
    rng = Random(seed * 1_000_003 + i)
    if i % 50 == 1:
        return b""
    if i % 20 == 5:
        return rng.randbytes(rng.randint(64 * KIB, 1_000_000))
    if i % 4 == 3:
        return rng.randbytes(rng.randint(KIB, 64 * KIB))
    return rng.randbytes(rng.randint(1, KIB))


def duplicates(marks: str) -> tuple[int, int, dict[str, list[str]]]:
    """(ids with more than one finished execution, executions beyond the first, and for each
    such id where its executions ran: network namespace, newline, Parsl block id)."""
    seen: dict[str, list[str]] = {}
    for name in os.listdir(marks):
        with open(os.path.join(marks, name)) as f:
            seen.setdefault(name.split(".", 1)[0], []).append(f.read())
    twice = {tid: where for tid, where in seen.items() if len(where) > 1}
    return len(twice), sum(len(w) - 1 for w in twice.values()), twice


def sidecar_figures() -> dict[str, Any]:
    """Reconnects and resumed connections of the worker tunnels; the SSH transport in use."""
    client = parsl_sidecar.connect(os.environ["PARSL_SIDECAR_CONNECTION_FILE"], timeout=60)
    try:
        tunnels = client.call("tunnels.list")
        tunnels = tunnels["tunnels"] if isinstance(tunnels, dict) else tunnels
        conns = client.call("ssh.list")
    finally:
        client.close()
    return {
        "tunnel_reconnects": sum(int(t.get("reconnects", 0)) for t in tunnels),
        "resumed_connections": sum(int(t.get("resumed_connections", 0)) for t in tunnels),
        "cut_in_flight": sum(int(t.get("cut_in_flight", 0)) for t in tunnels),
        "ssh_reconnects": sum(int(c.get("reconnects", 0)) for c in conns),
        "transports": sorted({str(c.get("transport")) for c in conns}),
    }


class MemorySampler(threading.Thread):
    """The sidecar's memory by kind (sidecar.status) every few seconds, with the task count: what
    grows, heap or buffers, says where to look when RSS does."""

    def __init__(self, counts: Counts, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.counts, self.every = counts, every
        self.samples: list[dict[str, Any]] = []
        self.stopped = threading.Event()

    def sample(self, client: parsl_sidecar.Client) -> None:
        mem = client.call("sidecar.status")["memory"]
        self.samples.append({"tasks": self.counts.completed + self.counts.failed, **mem})

    def run(self) -> None:
        try:
            client = parsl_sidecar.connect(os.environ["PARSL_SIDECAR_CONNECTION_FILE"], timeout=30)
        except Exception:
            return
        try:
            while not self.stopped.wait(self.every):
                try:
                    self.sample(client)
                except Exception:
                    continue  # a sample missed under chaos is only a sample
        finally:
            client.close()

    def thinned(self, most: int = 40) -> list[dict[str, Any]]:
        step = max(1, len(self.samples) // most)
        kept = self.samples[::step]
        if self.samples and kept[-1] is not self.samples[-1]:
            kept.append(self.samples[-1])
        return kept


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, required=True)
    ap.add_argument("--run", required=True, help="a name for this run's objects and paths")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--bucket", default="soak")
    ap.add_argument("--local", required=True, help="where pw:// inputs and outputs live")
    ap.add_argument("--scratch", required=True, help="worker paths (on the pools)")
    ap.add_argument("--marks", required=True)
    ap.add_argument("--progress", required=True)
    ap.add_argument("--result", required=True)
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--window", type=int, default=96)
    ap.add_argument("--settle", type=float, default=25, help="idle seconds before the end sample")
    ap.add_argument("--stall", type=float, default=600, help="give up after this long idle")
    a = ap.parse_args()

    n, run = a.tasks, a.run
    big = n >= 1000
    os.makedirs(a.marks, exist_ok=True)
    stores = Stores(a.bucket, a.local)
    stores.buckets()
    inputs = make_inputs(stores, run, big)
    with open(os.environ["PARSL_SIDECAR_EXECUTORS"]) as f:
        completed = json.load(f)
    labels = sorted(completed)
    # parsl_config's block error handler replaces a block whose workers were killed (Parsl's
    # default, with INIT_BLOCKS 1, would mark the executor bad for good: parsl_sidecar/_block_errors.py)
    cfg = parsl_config(
        retries=a.retries,
        run_dir=os.path.join(a.scratch, run, "runinfo"),
    )
    c = Counts()
    t0 = time.monotonic()
    last_write = 0.0

    def progress(phase: str, force: bool = False) -> None:
        nonlocal last_write
        now = time.monotonic()
        if force or now - last_write > 0.5:
            last_write = now
            state = {"phase": phase, "completed": c.completed, "failed": c.failed, "t": now - t0}
            write_json(a.progress, {**state, "submitted": c.submitted})

    n_staged = len(range(0, n, 10))
    plain = {x: python_app(soak_apps.echo, executors=[x]) for x in labels}
    staged = {x: log_app(stage_app(x)(python_app(soak_apps.staged, executors=[x]))) for x in labels}
    Check = Callable[[Any], None]
    inflight: dict[Future[Any], tuple[int, Check]] = {}

    def submit(i: int) -> None:
        label = labels[i % len(labels)]
        if i % 10:
            data = payload(a.seed, i)
            want = (i, hashlib.sha256(data).hexdigest(), len(data))

            def check_plain(r: Any) -> None:
                if tuple(r) != want:
                    c.error(f"task {i}: result {r!r} is not {want!r}")
                else:
                    c.completed += 1

            inflight[plain[label](i, data, a.marks)] = (i, check_plain)
            c.submitted += 1
            return
        k = i // 10
        scheme, size, outs, out_scheme = staged_shape(k, n_staged, big)
        src = inputs[(scheme, size)]
        work = os.path.join(a.scratch, run, f"t{i}")
        out_key = f"out/{run}/t{i}"
        out_url = (
            f"pw://{os.path.join(a.local, out_key)}"
            if out_scheme == "pw"
            else f"s3://{a.bucket}/{out_key}"
        )
        fut = staged[label](
            i,
            a.marks,
            outs,
            inputs_dict={
                "in": {"type": "file", "global_path": src.url, "worker_path": f"{work}/in.bin"}
            },
            outputs_dict={
                "out": {"type": "directory", "global_path": out_url, "worker_path": f"{work}/out"}
            },
        )

        def check_staged(r: Any) -> None:
            tid, in_sha, written = r
            ok = tid == i
            if in_sha == src.sha:
                c.files_verified += 1
                c.bytes_moved += size
            else:
                c.files_unverified += 1
                ok = False
            for m, osize in enumerate(outs):
                name = f"part{m}.bin"
                want = hashlib.sha256(soak_apps.out_body(i, m, osize)).hexdigest()
                got = stores.get(out_scheme, f"{out_key}/{name}")
                there = hashlib.sha256(got).hexdigest() if got is not None else None
                if written.get(name) == want == there:
                    c.files_verified += 1
                    c.bytes_moved += osize
                else:
                    c.files_unverified += 1
                    ok = False
            if ok:
                c.completed += 1
            else:
                c.error(f"staged task {i}: result {r!r} does not check out")

        inflight[fut] = (i, check_staged)
        c.submitted += 1

    sampler = MemorySampler(c)
    with parsl.load(cfg):
        progress("loaded", force=True)
        sampler.start()
        nxt = 0
        while nxt < n or inflight:
            while nxt < n and len(inflight) < a.window:
                submit(nxt)
                nxt += 1
            done, _ = wait(list(inflight), timeout=a.stall, return_when=FIRST_COMPLETED)
            if not done:
                for i, _check in inflight.values():
                    c.error(f"task {i}: no result after {a.stall:.0f} s without any progress")
                break
            for fut in done:
                i, check = inflight.pop(fut)
                try:
                    check(fut.result())
                except Exception as e:
                    c.error(f"task {i}: {type(e).__name__}: {e}")
            progress("running")
        wall = time.monotonic() - t0
        progress("done", force=True)
        try:
            figures = sidecar_figures()
        except Exception as e:  # figures are extra; the counts still count
            figures = {"error": f"{type(e).__name__}: {e}"}
        # idle, connections still open: the end sample then counts neither sockets a client pool
        # keeps alive a while nor V8's garbage (its memory reducer collects ~8 s after work stops)
        time.sleep(a.settle)
        sampler.stopped.set()
        sampler.join(timeout=30)
        progress("settled", force=True)
        time.sleep(1.5)
    parsl.clear()
    ids_twice, extra, twice = duplicates(a.marks)
    result = {
        "tasks_submitted": c.submitted,
        "tasks_completed": c.completed,
        "tasks_failed": c.failed,
        "tasks_duplicated": ids_twice,
        "extra_executions": extra,
        "duplicates": dict(list(twice.items())[:20]),
        "files_verified": c.files_verified,
        "files_unverified": c.files_unverified,
        "bytes_moved": c.bytes_moved,
        "wall_s": round(wall, 2),
        "errors": c.errors,
        **figures,
        "memory": sampler.thinned(),
        "executors": completed,
    }
    write_json(a.result, result)
    ok = c.completed == n and c.failed == 0 and ids_twice == 0 and c.files_unverified == 0
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(2)
