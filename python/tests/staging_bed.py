"""Servers for the staging tests: an sshd reached as ``pool``, moto (S3) and fake-gcs-server (GCS)
with a bucket each, and a real sidecar whose environment points at all three."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from pools import ssh_config_text, start_sidecar_env
from sidecar_proc import Sidecar, short_tmpdir
from testbed import testbed_up

import parsl_sidecar
from parsl_sidecar import _transfers

BUCKET = "psc-py"


@dataclass
class StagingBed:
    """Running servers, the sidecar, a connected client, and a scratch dir (a tmpfs)."""

    sidecar: Sidecar
    client: parsl_sidecar.Client
    s3: dict[str, Any]
    gcs: dict[str, Any]
    sshd: dict[str, Any]
    tmp: Path

    def s3_client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3["endpoint"],
            region_name=self.s3["region"],
            aws_access_key_id=self.s3["accessKeyId"],
            aws_secret_access_key=self.s3["secretAccessKey"],
        )

    def s3_put(self, key: str, body: bytes) -> None:
        self.s3_client().put_object(Bucket=BUCKET, Key=key, Body=body)

    def s3_get(self, key: str) -> bytes:
        out: bytes = self.s3_client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return out

    def s3_keys(self, prefix: str) -> list[str]:
        res = self.s3_client().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for o in res.get("Contents", []))

    def _gcs(self, method: str, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.gcs["apiEndpoint"] + path, data=body, method=method)
        req.add_header("Content-Type", "application/octet-stream" if body else "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            out: bytes = r.read()
            return out

    def gcs_put(self, name: str, body: bytes) -> None:
        q = urllib.parse.quote(name, safe="")
        self._gcs("POST", f"/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={q}", body)

    def gcs_get(self, name: str) -> bytes:
        q = urllib.parse.quote(name, safe="")
        return self._gcs("GET", f"/storage/v1/b/{BUCKET}/o/{q}?alt=media")

    def gcs_names(self, prefix: str) -> list[str]:
        q = urllib.parse.quote(prefix, safe="")
        res = json.loads(self._gcs("GET", f"/storage/v1/b/{BUCKET}/o?prefix={q}"))
        return sorted(o["name"] for o in res.get("items", []))


@contextlib.contextmanager
def staging_bed() -> Iterator[StagingBed]:
    """Start everything; stop it all (asserting a clean sidecar exit) afterwards."""
    tmp = Path(short_tmpdir("psc-stage-"))
    scratch = Path(f"/dev/shm/{tmp.name}")
    scratch.mkdir()
    home = tmp / "home"
    home.mkdir()
    with contextlib.ExitStack() as stack:
        # remote sessions get their own HOME: root's ~/.bashrc here runs `pyenv rehash`
        sshd = stack.enter_context(testbed_up("sshd", extra_config=[f"SetEnv HOME={home}"]))
        s3 = stack.enter_context(testbed_up("s3"))
        gcs = stack.enter_context(testbed_up("gcs"))
        cfg = tmp / "ssh_config"
        cfg.write_text(ssh_config_text({"pool": sshd}))
        cfg.chmod(0o600)
        env = {
            "PARSL_SIDECAR_SSH_CONFIG": str(cfg),
            **s3["env"],
            **gcs["env"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "METADATA_SERVER_DETECTION": "none",
        }
        runtime = short_tmpdir()
        sc = start_sidecar_env(runtime, env)
        client = parsl_sidecar.connect(sc.connection_file, timeout=120)
        _transfers.set_default_client(client)
        try:
            bed = StagingBed(sc, client, s3, gcs, sshd, scratch)
            bed.s3_client().create_bucket(Bucket=BUCKET)
            project = gcs["projectId"]
            bed._gcs(
                "POST", f"/storage/v1/b?project={project}", json.dumps({"name": BUCKET}).encode()
            )
            yield bed
        finally:
            _transfers.set_default_client(None)
            client.close()
            code = sc.stop()
            out = sc.stderr()
            keep = os.environ.get("PSC_KEEP_SIDECAR_LOG")
            if keep:
                shutil.copy(runtime / "sidecar.log", keep)
            shutil.rmtree(runtime, ignore_errors=True)
            os.unlink(sc.stderr_path)
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
            assert code == 0, f"sidecar exited with {code}; stderr:\n{out}"


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under root."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
