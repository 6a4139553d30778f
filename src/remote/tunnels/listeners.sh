#!/bin/sh
# listeners.py where the head node has no python: prints `LISTENERS addr...` for the LISTEN
# sockets on TCP port $1, from `ss` (`sh -c PROGRAM parsl-sidecar-listeners PORT`;
# src/tunnels/pool-commands.ts). Brackets of IPv6 addresses are removed.
port=$1
echo "LISTENERS $(ss -Hltn 2>/dev/null | awk '{print $4}' | grep ":$port\$" | sed "s/:$port\$//; s/^\\[//; s/\\]\$//" | tr '\n' ' ')"
