#!/bin/sh
# A tree on a pool, listed (src/staging/stores/pool.ts, list), as `sh -c PROGRAM
# parsl-sidecar-list ROOT`. NUL-separated fields: first every symlink (`L NAME`, then its
# target), then `=`, then, following links, `f SIZE MTIME MODE NAME` for a file, `d 0 MTIME MODE
# NAME` for an empty directory and `x 0 0 0 NAME` for a symlink to nothing. GNU find.
cd -- "$1" || exit 1
find . -mindepth 1 -type l -printf 'L %P\0%l\0' || exit 1
printf '=\0'
find -L . -mindepth 1 \( -type f -printf 'f %s %T@ %m %P\0' \) -o \( -type d -empty -printf 'd 0 %T@ %m %P\0' \) -o \( -type l -printf 'x 0 0 0 %P\0' \)
