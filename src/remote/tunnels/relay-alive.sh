#!/bin/sh
# Whether a durable relay still runs on the pool, after its control channel did not come back in
# time: `sh -c PROGRAM parsl-sidecar-relay-alive RELAY_ID PGID` (src/tunnels/relay-commands.ts).
# Prints `ALIVE` when process group PGID's leader's command line names RELAY_ID (the check
# kill-relay.sh makes before it kills), else `GONE`. Exits 0.
id=$1; pgid=$2
if [ -n "$id" ] && [ -d "/proc/$pgid" ] && tr '\0' ' ' < "/proc/$pgid/cmdline" 2>/dev/null | grep -q -- "$id"; then
  echo ALIVE
else
  echo GONE
fi
