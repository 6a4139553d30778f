#!/usr/bin/env bash
# npm run demo: a small Parsl workflow (examples/demo) run through `parsl-sidecar run` on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '[demo] running examples/demo/main.py through parsl-sidecar run\n' >&2
cd examples/demo
exec node ../../dist/cli/main.js run -- ../../.venv/bin/python main.py "$@"
