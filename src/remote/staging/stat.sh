#!/bin/sh
# One path on a pool (src/staging/stores/pool.ts, stat), as `sh -c PROGRAM parsl-sidecar-stat
# PATH`: prints `TYPE|SIZE|MTIME|MODE` (GNU stat, symlinks followed); exit 2 when PATH does not
# exist, after printing `dangling` when it is a symlink to nothing.
if [ ! -e "$1" ]; then [ -L "$1" ] && echo dangling; exit 2; fi
exec stat -L -c '%F|%s|%Y|%a' -- "$1"
