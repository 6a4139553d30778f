#!/bin/sh
# Prints the name of a Python 3.4 or newer on this host (python3, else python), or nothing. The
# relays, the probe and the listeners inspection need one (src/tunnels/pool-commands.ts runs it as
# `py=$(sh -c PROGRAM parsl-sidecar-find-python)`).
for p in python3 python; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 4))' >/dev/null 2>&1; then
    echo "$p"
    break
  fi
done
