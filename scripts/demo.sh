#!/usr/bin/env bash
# npm run demo: a small Parsl workflow (examples/demo) run through `parsl-sidecar run` on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
printf '[demo] running examples/demo/main.py through parsl-sidecar run\n' >&2
root=$PWD
cd examples/demo
# the environment's bin first on PATH: Parsl starts interchange.py and process_worker_pool.py from there
export PATH="$root/.venv/bin:$PATH" VIRTUAL_ENV="$root/.venv"
rm -rf results
exec node "$root/dist/bin/parsl-sidecar.js" run --executors executors.json -- python main.py "$@"
