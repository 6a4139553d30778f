#!/bin/sh
# The holder of an environment's lock on its host (src/env/lock.ts), as `sh -c PROGRAM
# parsl-sidecar-lock LOCK MECHANISM`; it holds the lock for as long as it runs. MECHANISM:
# `flock` (flock on LOCK, which the kernel drops if the holder dies), `mkdir` (an atomic mkdir of
# LOCK.d with `HOST PID` in its owner file and a heartbeat; a dead pid on the same host, or no
# heartbeat for 2 minutes, is stale and taken over) or `auto` (flock when the host has it).
# Prints `WAIT HOST PID` once when another holder has it, `STALE ...` when it takes a stale one
# over, `LOCKED flock|mkdir` when held, or `ERROR why` (exit 3). Then it reads `watch PGID` and
# `unwatch` lines on stdin until stdin closes, stops a group still watched (SIGTERM), lets go of
# the lock and exits 0: closing stdin releases it, and so does losing the connection.
L=$1; M=$2; H=$(hostname 2>/dev/null || uname -n); ME=$$
D=$(dirname "$L")
# read watch/unwatch lines until stdin closes, then stop a group still watched
watch_loop() {
  W=""
  while IFS= read -r line; do case "$line" in "watch "*) W=${line#watch };; unwatch) W="";; esac; done
  [ -n "$W" ] && kill -TERM -"$W" 2>/dev/null
}
mkdir -p "$D" 2>/dev/null; { [ -d "$D" ] && [ -w "$D" ]; } || { echo "ERROR cannot write to $D (for the lock $L)"; exit 3; }
if [ "$M" != mkdir ] && command -v flock >/dev/null 2>&1; then
  ( : >>"$L" ) 2>/dev/null || { echo "ERROR cannot create $L"; exit 3; }
  exec 9>>"$L"
  if ! flock -n 9; then echo "WAIT $(head -c 200 "$L" 2>/dev/null)"; flock 9 || exit 3; fi
  echo "$H $ME" > "$L"
  echo "LOCKED flock"
  watch_loop
  exit 0
fi
[ "$M" = flock ] && { echo "ERROR flock is not installed"; exit 3; }
LD="$L.d"; waited=0
while ! mkdir "$LD" 2>/dev/null; do
  O=$(cat "$LD/owner" 2>/dev/null); OH=${O% *}; OP=${O##* }
  if [ -n "$O" ] && [ "$OH" = "$H" ] && ! kill -0 "$OP" 2>/dev/null; then
    echo "STALE $O"; mv "$LD" "$LD.stale.$ME" 2>/dev/null && rm -rf "$LD.stale.$ME"; continue
  fi
  if [ -n "$(find "$LD" -maxdepth 0 -mmin +2 2>/dev/null)" ] && [ -z "$(find "$LD/beat" -mmin -2 2>/dev/null)" ]; then
    echo "STALE old $O"; mv "$LD" "$LD.stale.$ME" 2>/dev/null && rm -rf "$LD.stale.$ME"; continue
  fi
  [ $waited = 0 ] && echo "WAIT $O"; waited=1
  sleep 1
done
trap 'rm -rf "$LD"' EXIT
trap 'exit 1' HUP INT TERM
echo "$H $ME" > "$LD/owner.tmp" && mv "$LD/owner.tmp" "$LD/owner"
touch "$LD/beat"
( while sleep 5; do kill -0 "$ME" 2>/dev/null || exit 0; touch "$LD/beat" 2>/dev/null || exit 0; done ) </dev/null >/dev/null 2>&1 &
B=$!
echo "LOCKED mkdir"
watch_loop
kill $B 2>/dev/null
exit 0
