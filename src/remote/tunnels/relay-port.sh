#!/bin/sh
# Tells a running durable relay that the forwarded port moved (after a reconnect sshd gave
# another): `sh -c PROGRAM parsl-sidecar-relay-port STATE_ROOT RELAY_ID PORT`
# (src/tunnels/relay-commands.ts). The relay reads STATE_ROOT/RELAY_ID/port at its next connect;
# the file is replaced whole. Prints `PORT <port>`, or `NORELAY` (exit 0) when the relay's state
# directory is gone.
dir=$1/$2; port=$3
[ -d "$dir" ] || { echo "NORELAY"; exit 0; }
umask 077
printf '%d\n' "$port" > "$dir/port.tmp" && mv "$dir/port.tmp" "$dir/port" && echo "PORT $port"
