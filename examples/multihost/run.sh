#!/usr/bin/env bash
# Runs workflow.py against two pools: two private sshd on 127.0.0.1 (the repository's test bed),
# named pool_a and pool_b in a private ssh config, each running the workers with this checkout's
# Python environment. Needs root-less nothing but openssh-server (scripts/install-system-deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bash "$root/scripts/setup.sh" >&2
work=$(mktemp -d /tmp/multihost-XXXXXX)
cleanup() {
  exec 3>&- 4>&- 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# two sshd pools; each `up` keeps its servers until its stdin closes
start_pool() {
  local name=$1 fifo="$work/$1.in"
  mkfifo "$fifo"
  "$root/node_modules/.bin/tsx" "$root/test/testbed/cli.ts" up sshd --json <"$fifo" >"$work/$name.json" &
  eval "exec $2>\"$fifo\""
  for _ in $(seq 300); do [ -s "$work/$name.json" ] && break; sleep 0.1; done
  [ -s "$work/$name.json" ] || { echo "pool $name did not start" >&2; exit 1; }
}
start_pool pool_a 3
start_pool pool_b 4

"$root/.venv/bin/python" - "$work" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
lines = []
for name in ("pool_a", "pool_b"):
    s = json.loads((work / f"{name}.json").read_text())
    lines.append(f"Host {name}\n  HostName {s['host']}\n  Port {s['port']}\n  User {s['user']}\n"
                 f"  IdentityFile {s['keyPath']}\n  UserKnownHostsFile {s['knownHostsPath']}\n")
(work / "ssh_config").write_text("\n".join(lines))
(work / "ssh_config").chmod(0o600)
PY

# executors.json with this machine's paths filled in
sed -e "s#@PYTHON@#$root/.venv/bin/python#g" -e "s#@WORK@#$work#g" -e "s#@HERE@#$here#g" \
  "$here/executors.template.json" > "$work/executors.json"
echo "executors: $work/executors.json" >&2

export PARSL_SIDECAR_SSH_CONFIG="$work/ssh_config"
export PATH="$root/.venv/bin:$PATH"
cd "$here"
node "$root/dist/bin/parsl-sidecar.js" run -- python workflow.py "$work/executors.json" "$@"
