#!/usr/bin/env bash
# Installs what this checkout needs, and is quick when it is already there:
# node_modules from the lockfile, the TypeScript build, and a Python virtual
# environment (.venv) with parsl_sidecar, Parsl, pyzmq, msgpack and the test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .stamps
say() { printf '[setup] %s\n' "$*" >&2; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

lock_hash=$(hash_of package-lock.json)
if [ ! -d node_modules ] || [ "$(cat .stamps/npm 2>/dev/null)" != "$lock_hash" ]; then
  say "installing node_modules from package-lock.json (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_hash" > .stamps/npm
fi

src_hash=$( (find src -type f -name '*.ts' -print0 | sort -z | xargs -0 cat; cat tsconfig.json scripts/bundle.mjs package.json) | sha256sum | cut -c1-16)
if [ ! -f dist/bin/parsl-sidecar.js ] || [ "$(cat .stamps/build 2>/dev/null)" != "$src_hash" ]; then
  say "building TypeScript (tsc, then the CLI bundle in dist/bin with esbuild and its V8 code cache)"
  rm -rf dist
  npx tsc -p tsconfig.json
  node scripts/bundle.mjs
  echo "$src_hash" > .stamps/build
fi

PY=${PARSL_SIDECAR_PYTHON:-python3}
py_hash=$(hash_of python/pyproject.toml)
if [ ! -x .venv/bin/python ] || [ "$(cat .stamps/venv 2>/dev/null)" != "$py_hash" ]; then
  say "creating the Python virtual environment .venv (parsl_sidecar, Parsl, pyzmq, msgpack, test tools)"
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >&2
  .venv/bin/python -m pip install --quiet -e './python[dev]' >&2
  echo "$py_hash" > .stamps/venv
fi
