#!/usr/bin/env bash
# Usage: scripts/parsl-env.sh VERSION  -> prints the path of a virtual environment with
# parsl==VERSION, parsl_sidecar (editable, ./python[dev]) and pytest < 9 (Parsl's own conftest
# uses a hook argument pytest 9 removed). Made with uv from PyPI under .venvs/parsl-VERSION;
# quick when it is already there (stamp: pyproject, version, this script).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: scripts/parsl-env.sh PARSL_VERSION}
say() { printf '[parsl-env] %s\n' "$*" >&2; }
bash scripts/setup.sh # .venv/bin/uv
venv=.venvs/parsl-$version
stamp=$( (cat python/pyproject.toml scripts/parsl-env.sh; echo "$version") | sha256sum | cut -c1-16)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]; then
  say "creating $venv (Parsl $version, parsl_sidecar, pytest < 9)"
  rm -rf "$venv"
  .venv/bin/uv venv -q --python "${PARSL_SIDECAR_PYTHON:-python3}" "$venv" >&2
  .venv/bin/uv pip install -q --python "$venv/bin/python" -e './python[dev]' \
    "parsl==$version" 'pytest>=8,<9' >&2
  echo "$stamp" > "$venv/.stamp"
fi
echo "$PWD/$venv"
