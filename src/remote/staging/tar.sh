#!/bin/sh
# Files of a tree on a pool as one tar stream (src/staging/stores/pool.ts, readTree), as
# `sh -c PROGRAM parsl-sidecar-tar ROOT`: the NUL-separated names (relative to ROOT) on stdin,
# regular files only, links followed. GNU tar.
cd -- "$1" || exit 1
exec tar -c -f - --null --no-recursion --dereference --hard-dereference -T -
