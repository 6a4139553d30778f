#!/bin/sh
# A container image's path on a host (src/env/container.ts), as `sh -c PROGRAM
# parsl-sidecar-container-probe PATH` (PATH with `~` already expanded by the caller's shell
# word). Prints `path=PATH`, `exists=1` when it exists, `builder=B` (singularity, else
# apptainer, when either is on PATH) and `host_path=$PATH`. Always exits 0.
P=$1; echo "path=$P"; [ -e "$P" ] && echo exists=1
B=$(command -v singularity 2>/dev/null || command -v apptainer 2>/dev/null) && [ -n "$B" ] && echo "builder=$B"
echo "host_path=$PATH"; exit 0
