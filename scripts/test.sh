#!/usr/bin/env bash
# npm test: lint, typecheck, then every TypeScript (vitest) and Python (pytest) test.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n[test] %s\n' "$*" >&2; }
# the Debian packages of the test bed: installed as root or through sudo, else named (one line)
bash scripts/install-system-deps.sh >&2
bash scripts/setup.sh

say "typecheck (tsc strict, sources and tests)"
node_modules/.bin/tsc -p tsconfig.json --noEmit
node_modules/.bin/tsc -p tsconfig.test.json
say "TypeScript, the page's JavaScript and CSS: lint and format (biome check, biome.jsonc)"
node_modules/.bin/biome check
say "layers: no import runs up a layer, no cycles (dependency-cruiser, .dependency-cruiser.cjs)"
node_modules/.bin/depcruise src --config .dependency-cruiser.cjs --output-type err
say "programs sent to pools: shellcheck -s sh, py_compile, ruff, vermin; generated files fresh"
bash scripts/lint-remote.sh
say "python lint (ruff) and types (mypy --strict)"
(cd python && ../.venv/bin/ruff check . && ../.venv/bin/ruff format --check . && ../.venv/bin/mypy)

say "TypeScript tests (vitest)"
node_modules/.bin/vitest run "$@"

# the sidecars these tests start carry their pools over each transport in turn (docs/ssh.md)
transports=${PARSL_SIDECAR_SSH_TRANSPORT:-openssh ssh2}
rc=0
once=()
for t in $transports; do
  say "Python tests (pytest) over the $t transport"
  set +e
  PARSL_SIDECAR_SSH_TRANSPORT=$t .venv/bin/pytest python/tests "${once[@]}"
  r=$?
  set -e
  [ $r -eq 5 ] && { echo "pytest collected no tests" >&2; r=1; }
  [ $r -ne 0 ] && rc=$r
  # the login-node tests choose each node's transport themselves, the wheel's tests use ssh2
  # (the wheel's own copy), the notebook tests are about the kernel owning its sidecar: once
  once=(--ignore=python/tests/test_login_nodes.py --ignore=python/tests/test_wheel.py
    --ignore=python/tests/test_notebook.py)
done

say "Parsl range: the oldest and the newest supported release (scripts/parsl-matrix.sh)"
bash scripts/parsl-matrix.sh || rc=$?
exit $rc
