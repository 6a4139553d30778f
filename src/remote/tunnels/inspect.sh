#!/bin/sh
# What addresses workers could dial on the head node (src/tunnels/pool-commands.ts, inspectCommand;
# docs/tunnels.md, `dial_host`): prints `ADDRS a b ...`, its global IPv4 addresses (`ip`, else
# `hostname -I`), and `HOSTADDR a`, the first IPv4 address its own name resolves to (empty if none).
echo "ADDRS $( (ip -o -4 addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]}'; [ -x "$(command -v ip)" ] || hostname -I 2>/dev/null) | tr '\n' ' ')"
echo "HOSTADDR $(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR==1 {print $1}')"
