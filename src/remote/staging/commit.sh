#!/bin/sh
# Puts a file written by put.sh in place (src/staging/stores/pool.ts, commit), as
# `sh -c PROGRAM parsl-sidecar-commit TMP PATH`: renames TMP to PATH, or removes TMP and exits 1.
mv -f -- "$1" "$2" || { rm -f -- "$1"; exit 1; }
