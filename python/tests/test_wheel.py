"""The Python distribution carries the sidecar: the wheel `npm run wheel` builds, installed with
pip in a clean virtual environment, runs workflows with no node on PATH (Node from PyPI, the
``node`` extra); and the npm package still installs with ``npm i -g`` from its tarball.

The wheel is built once per session (scripts/wheel.mjs) and installed with the ``node`` and
``parsl`` extras from the package registry (pip's cache makes that a few seconds after the first).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pools import processes_matching, ssh_config_text
from sidecar_proc import short_tmpdir
from testbed import testbed_up

REPO = Path(__file__).resolve().parents[2]
VERSION = json.loads((REPO / "package.json").read_text())["version"]
NODE_NAMES = {"node", "nodejs", "npm", "npx", "corepack"}


@dataclass
class Installed:
    wheel: Path
    venv: Path
    env: dict[str, str]
    """os.environ with PATH = the venv's bin, then this machine's PATH without node"""
    install_seconds: float

    def run(
        self, *args: str, cwd: Path, timeout: float = 300, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / "parsl-sidecar"), *args],
            cwd=cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def left_running(self) -> list[str]:
        """Processes started from the venv (the sidecar's node, Parsl's interchange and workers)."""
        return processes_matching(str(self.venv))


def path_without_node(into: Path) -> str:
    """A directory of links to every program on PATH except Node's."""
    into.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = into / name
            if name not in NODE_NAMES and not link.exists() and os.access(Path(d, name), os.X_OK):
                link.symlink_to(Path(d, name))
    return str(into)


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    build = subprocess.run(
        ["node", str(REPO / "scripts" / "wheel.mjs")], capture_output=True, text=True, timeout=300
    )
    assert build.returncode == 0, build.stderr
    wheels = list((REPO / "dist" / "python").glob("*.whl"))
    assert len(wheels) == 1, wheels
    tmp = short_tmpdir("psc-wheel-")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    started = time.monotonic()
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{wheels[0]}[node,parsl]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    install_seconds = time.monotonic() - started
    assert pip.returncode == 0, pip.stdout + pip.stderr
    path = f"{venv / 'bin'}{os.pathsep}{path_without_node(tmp / 'bin')}"
    assert shutil.which("node", path=path) is None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSL_SIDECAR_")}
    env.update(PATH=path, VIRTUAL_ENV=str(venv), PARSL_SIDECAR_RUNTIME_DIR=str(tmp / "rt"))
    env["PARSL_SIDECAR_STATE_DIR"] = str(tmp / "state")
    try:
        yield Installed(wheels[0], venv, env, install_seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_the_wheel_is_pure_and_carries_the_sidecar(installed: Installed) -> None:
    assert installed.wheel.name == f"parsl_sidecar-{VERSION}-py3-none-any.whl"
    names = zipfile.ZipFile(installed.wheel).namelist()
    side = "parsl_sidecar_cli/sidecar/"
    for f in [
        "dist/bin/parsl-sidecar.js",
        "dist/bin/cli.cjs",
        "dist/bin/cli.cjs.cache",
        "src/web/assets/index.html",
        "node_modules/ssh2/index.js",
        "node_modules/@aws-sdk/client-s3/index.js",
        "node_modules/@google-cloud/storage/index.js",
    ]:
        assert side + f in names
    assert not [n for n in names if n.endswith(".node")]  # no native addon: no compiler, any CPU
    size = installed.wheel.stat().st_size / 2**20
    print(f"wheel {size:.1f} MiB, installed in {installed.install_seconds:.1f} s")


def test_one_version_for_npm_and_python(installed: Installed) -> None:
    r = installed.run("--version", cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == VERSION
    meta = subprocess.run(
        [
            str(installed.venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m, parsl_sidecar; "
            "print(m.version('parsl-sidecar'), parsl_sidecar.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert meta.stdout.split() == [VERSION, VERSION]


def test_no_node_at_all_says_how_to_get_one(installed: Installed, tmp_path: Path) -> None:
    bare = tmp_path / "venv"
    # without pip of its own (ensurepip takes seconds): the installed venv's pip installs into it
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    pip = [
        str(installed.venv / "bin" / "python"),
        "-m",
        "pip",
        "--python",
        str(bare / "bin" / "python"),
    ]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", str(installed.wheel)], check=True)
    r = subprocess.run(
        [str(bare / "bin" / "parsl-sidecar"), "--version"],
        env={**installed.env, "PATH": installed.env["PATH"].split(os.pathsep, 1)[1]},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert "pip install 'parsl-sidecar[node]'" in r.stderr


def test_the_demo_runs_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    shutil.copytree(REPO / "examples" / "demo", demo)
    started = time.monotonic()
    r = installed.run("run", "--executors", "executors.json", "--", "python", "main.py", cwd=demo)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo OK" in r.stdout
    print(f"demo through the wheel: {time.monotonic() - started:.1f} s")
    assert installed.left_running() == []


def test_the_wheels_command_runs_node_with_the_sidecars_flags(
    installed: Installed, tmp_path: Path
) -> None:
    """The console script execs Node with the flags of the bin's shebang (`node FILE` skips it)."""
    r = installed.run(
        "run", "-q", "--", "sh", "-c", 'tr "\\0" "\\n" < /proc/$PPID/cmdline', cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    argv = r.stdout.split("\n")
    assert argv[1] == "--max-semi-space-size=8", argv
    assert argv[2].endswith("parsl_sidecar_cli/sidecar/dist/bin/parsl-sidecar.js"), argv


WORKFLOW = """
import parsl
from parsl import python_app
from parsl_sidecar import parsl_config

@python_app(executors=["pool"])
def square(x):
    return x * x

with parsl.load(parsl_config()):
    print("RESULT", sum(square(i).result() for i in range(8)))
"""


def test_a_loopback_pool_workflow_runs_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    """Over SSH with the wheel's own ssh2 (the one-file bundle in node_modules/)."""
    home = tmp_path / "home"
    home.mkdir()
    # pool sessions get their own HOME: root's ~/.bashrc here runs `pyenv rehash`
    with testbed_up("sshd", extra_config=[f"SetEnv HOME={home}"]) as sshd:
        cfg = tmp_path / "ssh_config"
        cfg.write_text(ssh_config_text({"loop": sshd}))
        cfg.chmod(0o600)
        run_dir = tmp_path / "pool"
        entry = {
            "POOL": "loop",
            "PYTHON": str(installed.venv / "bin" / "python"),
            "RUN_DIR": str(run_dir),
            "WORKER_LOGDIR_ROOT": str(run_dir / "logs"),
            "CORES_PER_WORKER": 1,
            "MAX_WORKERS_PER_NODE": 2,
        }
        (tmp_path / "executors.json").write_text(json.dumps({"pool": entry}))
        (tmp_path / "main.py").write_text(WORKFLOW)
        r = installed.run(
            "run",
            "--executors",
            "executors.json",
            "--",
            "python",
            "main.py",
            cwd=tmp_path,
            PARSL_SIDECAR_SSH_CONFIG=str(cfg),
            PARSL_SIDECAR_SSH_TRANSPORT="ssh2",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "RESULT 140" in r.stdout
        assert installed.left_running() == []


def test_s3_and_gcs_staging_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    """The SDKs bundled into the wheel's node_modules/ load and work."""
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(300_000))
    with testbed_up("s3") as s3, testbed_up("gcs") as gcs:
        urllib.request.urlopen(urllib.request.Request(f"{s3['endpoint']}/wheel", method="PUT"))
        urllib.request.urlopen(
            urllib.request.Request(
                f"{gcs['apiEndpoint']}/storage/v1/b?project={gcs['projectId']}",
                data=json.dumps({"name": "wheel"}).encode(),
                headers={"Content-Type": "application/json"},
            )
        )
        env = {
            **s3["env"],
            **gcs["env"],
            "AWS_EC2_METADATA_DISABLED": "true",
            "METADATA_SERVER_DETECTION": "none",
        }
        back = tmp_path / "back.bin"
        for src, dst in [
            (str(data), "s3://wheel/d.bin"),
            ("s3://wheel/d.bin", "gs://wheel/d.bin"),
            ("gs://wheel/d.bin", str(back)),
        ]:
            r = installed.run("stage", src, dst, "--quiet", cwd=tmp_path, timeout=120, **env)
            assert r.returncode == 0, r.stderr
        assert back.read_bytes() == data.read_bytes()


@dataclass
class NpmInstall:
    prefix: Path
    packed: dict[str, Any]
    proc: subprocess.Popen[str]
    started: float


@pytest.fixture(scope="module", autouse=True)
def npm_install() -> Iterator[NpmInstall]:
    """`npm i -g` of the packed tarball into a temporary prefix, started first and left to run
    (downloads, ssh2's optional native build) while the wheel's tests run."""
    tmp = short_tmpdir("psc-npm-")
    packed = subprocess.run(
        ["npm", "pack", "--json", "--pack-destination", str(tmp)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    info = json.loads(packed.stdout)[0]
    prefix = tmp / "prefix"
    args = [
        "npm",
        "i",
        "-g",
        "--prefix",
        str(prefix),
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
    ]
    proc = subprocess.Popen(
        [*args, "--loglevel=error", str(tmp / info["filename"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield NpmInstall(prefix, info, proc, time.monotonic())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        shutil.rmtree(tmp, ignore_errors=True)


def test_npm_i_g_from_the_packed_tarball(npm_install: NpmInstall, tmp_path: Path) -> None:
    files = {f["path"] for f in npm_install.packed["files"]}
    assert "dist/bin/cli.cjs" in files and "src/web/assets/index.html" in files
    assert not [f for f in files if f.startswith("dist/python/")]  # no wheel inside the tarball
    out, _ = npm_install.proc.communicate(timeout=600)
    assert npm_install.proc.returncode == 0, out
    print(f"npm i -g: {time.monotonic() - npm_install.started:.1f} s (in the background)")
    cli = npm_install.prefix / "bin" / "parsl-sidecar"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSL_SIDECAR_")}
    env.update(
        PARSL_SIDECAR_RUNTIME_DIR=str(tmp_path / "rt"),
        PARSL_SIDECAR_STATE_DIR=str(tmp_path / "state"),
    )
    v = subprocess.run([str(cli), "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert v.stdout.strip() == VERSION, v.stderr
    r = subprocess.run(
        [str(cli), "run", "-q", "--", "true"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert processes_matching(str(npm_install.prefix)) == []
