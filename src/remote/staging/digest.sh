#!/bin/sh
# Hashes files on a pool (src/staging/stores/pool.ts, digest), as `sh -c PROGRAM
# parsl-sidecar-digest ALGO` (sha256 or md5): the NUL-separated paths on stdin, in order, one
# `openssl dgst -r` line each (`sha256sum`/`md5sum` without openssl). Runs once per batch.
case $1 in sha256 | md5) ;; *) echo "unknown digest: $1" >&2; exit 1 ;; esac
if command -v openssl >/dev/null 2>&1; then H="openssl dgst -$1 -r"; else H="${1}sum"; fi
# shellcheck disable=SC2086 # $H is a command with its options, split on purpose
xargs -0 -r $H
