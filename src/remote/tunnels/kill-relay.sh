#!/bin/sh
# Ends a durable relay that did not come back after a reconnect, or whose control channel closed:
# `sh -c PROGRAM parsl-sidecar-kill-relay STATE_ROOT RELAY_ID PGID`
# (src/tunnels/relay-commands.ts). Kills process group PGID only if its leader's command line
# names RELAY_ID (so a pgid reused since is left alone) and prints `KILLED <pgid>`; removes the
# relay's state directory STATE_ROOT/RELAY_ID either way. Exits 0.
root=$1; id=$2; pgid=$3
if [ -d "/proc/$pgid" ] && tr '\0' ' ' < "/proc/$pgid/cmdline" 2>/dev/null | grep -q -- "$id"; then
  kill -KILL "-$pgid" 2>/dev/null && echo "KILLED $pgid"
fi
# its state; never the whole root (an empty id or root would be the caller's bug)
[ -z "$id" ] || rm -rf "${root:?}/$id"
true
