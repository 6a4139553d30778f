"""The Python side of the test bed: ``testbed_up`` starts servers and stops them on exit."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import boto3
import pytest
from testbed import testbed_up


def _alive(pid: int) -> bool:
    return subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode == 0


@pytest.mark.timeout(60)
def test_sshd_up_and_down() -> None:
    with testbed_up("sshd", extra_config=["MaxStartups 30"]) as sshd:
        assert sshd["kind"] == "sshd"
        out = subprocess.run(
            ["ssh", *sshd["sshArgs"], "echo ok"], capture_output=True, text=True, timeout=30
        )
        assert out.stdout.strip() == "ok", out.stderr
        pid = sshd["pid"]
        assert _alive(pid)
    assert not _alive(pid)


@pytest.mark.timeout(60)
def test_s3_with_boto3() -> None:
    with testbed_up("s3") as s3:
        client = boto3.client(
            "s3",
            endpoint_url=s3["endpoint"],
            region_name=s3["region"],
            aws_access_key_id=s3["accessKeyId"],
            aws_secret_access_key=s3["secretAccessKey"],
        )
        client.create_bucket(Bucket="py-bucket")
        client.put_object(Bucket="py-bucket", Key="k", Body=b"hello")
        assert client.get_object(Bucket="py-bucket", Key="k")["Body"].read() == b"hello"
        client.close()
    assert not _alive(s3["pid"])


@pytest.mark.timeout(60)
def test_gcs_json_api() -> None:
    with testbed_up("gcs") as gcs:
        url = f"{gcs['apiEndpoint']}/storage/v1/b?project={gcs['projectId']}"
        req = urllib.request.Request(
            url, data=json.dumps({"name": "py"}).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.load(resp)["name"] == "py"
    assert not _alive(gcs["pid"])


@pytest.mark.timeout(120)
def test_slurm_over_ssh() -> None:
    with testbed_up("slurm", sshd=True) as slurm:
        # The sshd sets SLURM_CONF for its sessions, like a login node.
        cmd = "sbatch --wait --wrap true >/dev/null && squeue -h | wc -l"
        out = subprocess.run(
            ["ssh", *slurm["sshd"]["sshArgs"], cmd], capture_output=True, text=True, timeout=90
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "0"


def _ssh(
    config: str, alias: str, cmd: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {})}
    return subprocess.run(
        ["ssh", "-F", config, alias, cmd], capture_output=True, text=True, timeout=30, env=full
    )


@pytest.mark.timeout(60)
def test_cert_node() -> None:
    with testbed_up("cert") as n:
        ok = _ssh(n["configPath"], n["alias"], "echo ok")
        assert ok.stdout.strip() == "ok", ok.stderr
        expired = _ssh(n["configPath"], n["expiredAlias"], "true")
        assert expired.returncode == 255
        assert "Permission denied" in expired.stderr
    assert not _alive(n["sshd"]["pid"])


def _skip_unless_root(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"SKIPPED LOUDLY: {what} needs root")


@pytest.mark.timeout(60)
def test_otp_node_code_from_python() -> None:
    _skip_unless_root("the TOTP node (a PAM service file in /etc/pam.d)")
    with testbed_up("otp") as n:
        code = subprocess.run(n["codeCommand"], capture_output=True, text=True, check=True)
        assert len(code.stdout.strip()) == 6
        ok = _ssh(n["configPath"], n["alias"], "echo ok", n["askpassEnv"])
        assert ok.stdout.strip() == "ok", ok.stderr
        wrong = _ssh(n["configPath"], n["alias"], "true", n["wrongAskpassEnv"])
        assert "Permission denied" in wrong.stderr
    assert not os.path.exists(f"/etc/pam.d/{n['pamService']}")


@pytest.mark.timeout(60)
def test_proxycommand_node() -> None:
    _skip_unless_root("the ProxyCommand node (network namespaces)")
    if os.environ.get("PSC_TESTBED_NO_NETNS") == "1":
        pytest.skip(
            "SKIPPED LOUDLY: the ProxyCommand node needs namespaces; PSC_TESTBED_NO_NETNS=1"
        )
    with testbed_up("proxycommand") as n:
        ok = _ssh(n["configPath"], n["alias"], "echo $SSH_CONNECTION")
        assert ok.stdout.split()[2] == n["compute"]["addr"], ok.stderr
    assert not _alive(n["target"]["pid"])
