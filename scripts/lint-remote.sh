#!/usr/bin/env bash
# Lints the programs the sidecar sends to pools (src/remote/): every .sh is POSIX sh (`#!/bin/sh`
# first, shellcheck -s sh), every .bash (the few that need bash) `#!/bin/bash` and shellcheck -s
# bash; every .py compiles (py_compile), passes ruff (src/remote/ruff.toml)
# and runs on the oldest Python its `# Python: X.Y+` line names (vermin). Then the generated
# module that carries them must match the files (scripts/generate.ts --check).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
bad() { printf 'lint-remote: %s\n' "$*" >&2; fail=1; }

mapfile -t shs < <(find src/remote -name '*.sh' | sort)
mapfile -t bashes < <(find src/remote -name '*.bash' | sort)
mapfile -t pys < <(find src/remote -name '*.py' | sort)

for f in "${shs[@]}"; do
  [ "$(head -n 1 "$f")" = "#!/bin/sh" ] || bad "$f: the first line must be #!/bin/sh (programs run under the pool's POSIX sh)"
done
if [ "${#shs[@]}" -gt 0 ]; then shellcheck -s sh "${shs[@]}" || fail=1; fi
for f in "${bashes[@]}"; do
  [ "$(head -n 1 "$f")" = "#!/bin/bash" ] || bad "$f: the first line must be #!/bin/bash"
done
if [ "${#bashes[@]}" -gt 0 ]; then shellcheck -s bash "${bashes[@]}" || fail=1; fi

for f in "${pys[@]}"; do
  min=$(sed -n 's/^# Python: \([0-9]*\.[0-9]*\)+.*$/\1/p' "$f" | head -n 1)
  [ -n "$min" ] || { bad "$f: no '# Python: X.Y+' line naming the oldest Python it supports"; continue; }
  targets=("-t=$min-")
  # a program for Python 2.7 and 3 names both: '# Python: 2.7+, 3.4+'
  min3=$(sed -n 's/^# Python: 2\.7+, \(3\.[0-9]*\)+.*$/\1/p' "$f" | head -n 1)
  [ -z "$min3" ] || targets=("-t=2.7-" "-t=$min3-")
  .venv/bin/vermin --no-tips --violations --quiet "${targets[@]}" "$f" >/dev/null ||
    { .venv/bin/vermin --no-tips --violations "${targets[@]}" "$f" >&2 || true; bad "$f: needs a newer Python than its '# Python:' line says"; }
done
if [ "${#pys[@]}" -gt 0 ]; then
  PYTHONPYCACHEPREFIX=$(mktemp -d) python3 -m py_compile "${pys[@]}" || fail=1
  .venv/bin/ruff check --quiet "${pys[@]}" || fail=1
  .venv/bin/ruff format --check --quiet "${pys[@]}" || fail=1
fi

node_modules/.bin/tsx scripts/generate.ts --check || fail=1
exit $fail
