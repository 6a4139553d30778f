#!/usr/bin/env bash
# The Parsl range (docs/parsl-versions.md): for the oldest and the newest supported release, in a
# virtual environment of its own (scripts/parsl-env.sh; the loopback pools run its Python too),
# Parsl's own tests locally and through the sidecar (python/tests/matrix_parsl_suite.py) and,
# for the oldest, the integration tests that touch Parsl's API (the ordinary run covers the
# newest with every test). Extra pytest arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n[parsl-matrix] %s\n' "$*" >&2; }
oldest=$(sed -n 's/^OLDEST_PARSL = "\(.*\)"$/\1/p' python/parsl_sidecar/_parsl_compat.py)
newest=${PARSL_SIDECAR_NEWEST_PARSL:-2026.10.26}
versioned=(python/tests/test_parsl_versions.py python/tests/test_providers_unit.py)
# why these for the oldest: docs/parsl-versions.md ("What CI runs")
oldest_only=(
  python/tests/test_executors_e2e.py
  python/tests/test_staging_e2e.py
  python/tests/test_executors_slurm.py
  python/tests/test_executors_pbspro.py
)
# 4,000 tasks across dropped connections: the tunnels' relay, not Parsl's API (45 s)
oldest_skip=(-k "not test_drops_mid_workflow_lose_nothing")
rc=0
for v in "$oldest" "$newest"; do
  venv=$(bash scripts/parsl-env.sh "$v")
  tests=("${versioned[@]}" python/tests/matrix_parsl_suite.py)
  [ "$v" = "$oldest" ] && tests+=("${oldest_only[@]}" "${oldest_skip[@]}")
  say "Parsl $v: ${tests[*]}"
  start=$SECONDS
  set +e
  "$venv/bin/pytest" "${tests[@]}" -p no:cacheprovider "$@"
  r=$?
  set -e
  [ $r -eq 5 ] && { echo "pytest collected no tests" >&2; r=1; }
  [ $r -ne 0 ] && rc=$r
  say "Parsl $v: exit $r in $((SECONDS - start)) s"
done
exit $rc
