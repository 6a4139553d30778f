#!/bin/sh
# CONDA_DIR on a host before and after installing conda there (src/env/conda-install.ts), as
# `sh -c PROGRAM parsl-sidecar-conda-dir DIR`. Makes DIR's parent if missing; prints
# `tool=DIR/...` (the first of bin/conda, condabin/conda, bin/mamba, bin/micromamba that is
# executable), `exists=1`, `empty=1` (an empty directory), `writable=1` (the parent),
# `parent=P`, `user=NAME`, `bash=1` (bash on PATH). Always exits 0.
D=$1; P=$(dirname "$D")
for c in bin/conda condabin/conda bin/mamba bin/micromamba; do [ -x "$D/$c" ] && { echo "tool=$D/$c"; break; }; done
[ -e "$D" ] && echo exists=1
[ -d "$D" ] && [ -z "$(ls -A "$D" 2>/dev/null)" ] && echo empty=1
mkdir -p "$P" 2>/dev/null; [ -d "$P" ] && [ -w "$P" ] && echo writable=1
echo "parent=$P"; echo "user=$(id -un 2>/dev/null)"
command -v bash >/dev/null 2>&1 && echo bash=1
exit 0
