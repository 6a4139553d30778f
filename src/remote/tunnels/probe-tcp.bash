#!/bin/bash
# The end-to-end check of a reverse tunnel where the head node has no python (probe.py says what
# it checks), as `bash -c PROGRAM parsl-sidecar-probe-tcp HOST PORT TOKEN`
# (src/tunnels/pool-commands.ts): bash, for its /dev/tcp and `read -t`. Prints `RESULT ok 0` or
# `RESULT <why not>`; exits 0 either way.

exec 3<>"/dev/tcp/$1/$2" || { echo "RESULT cannot connect to $1:$2"; exit 0; }
printf 'PSC-CHECK %s\n' "$3" >&3
# a silent peer is not waited for past 10 s
IFS= read -r -t 10 line <&3
if [ "$line" = "PSC-OK $3" ]; then echo "RESULT ok 0"; else echo "RESULT unexpected answer $line"; fi
