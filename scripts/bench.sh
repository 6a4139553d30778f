#!/usr/bin/env bash
# npm run bench -- NAME [--quick]: runs bench/NAME.ts; its last line is one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-}
if [ -z "$name" ] || [ ! -f "bench/$name.ts" ]; then
  echo "usage: npm run bench -- NAME [--quick]" >&2
  echo "benchmarks: $(ls bench/*.ts 2>/dev/null | xargs -n1 basename 2>/dev/null | sed 's/\.ts$//' | grep -v '^lib' | tr '\n' ' ')" >&2
  exit 2
fi
shift
bash scripts/setup.sh >&2
exec node_modules/.bin/tsx "bench/$name.ts" "$@"
