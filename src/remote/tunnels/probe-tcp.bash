#!/bin/bash
# The end-to-end check of a reverse tunnel where the head node has no python (probe.py says what
# it checks), as `bash -c PROGRAM parsl-sidecar-probe-tcp HOST PORT TOKEN [direct]`
# (src/tunnels/pool-commands.ts): bash, for its /dev/tcp and `read -t`. Prints `RESULT ok 0` or
# `RESULT <why not>`; exits 0 either way. With `direct` it sends nothing and holds the
# connection a moment (bash cannot name its port: the sidecar looks for any connection then).

exec 3<>"/dev/tcp/$1/$2" || { echo "RESULT cannot connect to $1:$2"; exit 0; }
if [ "${4:-}" = direct ]; then
  IFS= read -r -t 0.3 _ <&3
  exec 3>&-
  echo "RESULT ok 0"
  exit 0
fi
printf 'PSC-CHECK %s\n' "$3" >&3
# a silent peer is not waited for past 10 s
IFS= read -r -t 10 line <&3
if [ "$line" = "PSC-OK $3" ]; then echo "RESULT ok 0"; else echo "RESULT unexpected answer $line"; fi
