#!/bin/sh
# The end-to-end check of a reverse tunnel where the head node has no python (probe.py says what
# it checks): bash, not sh, runs it, as `bash -c PROGRAM probe HOST PORT TOKEN`
# (src/tunnels/pool-commands.ts), for bash's /dev/tcp and `read -t`. Prints `RESULT ok 0` or
# `RESULT <why not>`; exits 0 either way.

# shellcheck disable=SC3025 # bash runs this file: its /dev/tcp is what it probes with
exec 3<>"/dev/tcp/$1/$2" || { echo "RESULT cannot connect to $1:$2"; exit 0; }
printf 'PSC-CHECK %s\n' "$3" >&3
# shellcheck disable=SC3045 # bash's read -t: a silent peer is not waited for past 10 s
IFS= read -r -t 10 line <&3
if [ "$line" = "PSC-OK $3" ]; then echo "RESULT ok 0"; else echo "RESULT unexpected answer $line"; fi
