#!/bin/sh
# The SHA-256 of a file copied to a host (src/env/conda-install.ts, the conda installer), as
# `sh -c PROGRAM parsl-sidecar-sha256 FILE`: the hex digest first on the line (sha256sum,
# shasum -a 256 or python3, whichever the host has), or `none` when it has none of them.
F=$1
if command -v sha256sum >/dev/null 2>&1; then sha256sum "$F"
elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$F"
elif command -v python3 >/dev/null 2>&1; then python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$F"
else echo none; fi
