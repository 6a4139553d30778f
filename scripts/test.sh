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

# the sidecars these tests start carry their pools over openssh (what `auto` picks here), then,
# for the tests whose sidecars reach pools over SSH and do not pick a transport themselves, over
# ssh2 (the rest does not depend on the transport: the wire, the client, the login nodes, the
# wheel, the notebooks); PARSL_SIDECAR_SSH_TRANSPORT names one transport for the whole suite
over_ssh=(python/tests/test_executors_e2e.py python/tests/test_staging_e2e.py
  python/tests/test_prompts.py python/tests/test_example_multihost.py
  python/tests/test_jobs_register.py python/tests/test_executors_slurm.py
  python/tests/test_executors_pbspro.py)
rc=0
pytest_over() {
  local t=$1
  shift
  say "Python tests (pytest) over the $t transport"
  set +e
  PARSL_SIDECAR_SSH_TRANSPORT=$t .venv/bin/pytest "$@"
  local r=$?
  set -e
  [ $r -eq 5 ] && { echo "pytest collected no tests" >&2; r=1; }
  [ $r -ne 0 ] && rc=$r
  return 0
}
if [ -n "${PARSL_SIDECAR_SSH_TRANSPORT:-}" ]; then
  pytest_over "$PARSL_SIDECAR_SSH_TRANSPORT" python/tests
else
  pytest_over openssh python/tests
  pytest_over ssh2 "${over_ssh[@]}"
fi

say "Parsl range: the oldest and the newest supported release (scripts/parsl-matrix.sh)"
bash scripts/parsl-matrix.sh || rc=$?
exit $rc
