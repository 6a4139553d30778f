#!/bin/sh
# Writes one file on a pool (src/staging/stores/pool.ts, put), as
# `sh -c PROGRAM parsl-sidecar-put DIR TMP SIZE MODE`: stdin (SIZE bytes, or `-` when unknown)
# goes to the temporary file TMP in DIR (made if missing) and is hashed as it arrives (python3 for
# large files, else tee handing a copy to openssl, sha256sum without it). Prints `size N` and the hash line of
# what arrived; MODE (octal, or `-`) is set on TMP. A short or long stream exits 3 (a message on
# stderr), any other failure 1; either way TMP is gone. commit.sh renames TMP into place.
d=$1; t=$2; n=$3; m=$4
mkdir -p -- "$d" || exit 1
if command -v openssl >/dev/null 2>&1; then H="openssl dgst -sha256 -r"; else H="sha256sum"; fi
# A file of 8 MiB or more, where a working python3 is found: one process writes and hashes what
# it reads (up to 1 MiB a read). tee reads 8 KiB at a time and copies every byte once more into
# the hash's pipe: 1 GiB took ~1.5 s more of the pool's CPU that way (docs/benchmarks.md, staging).
if [ "$n" != "-" ] && [ "$n" -ge 8388608 ] && python3 -c 'import hashlib' 2>/dev/null; then
  sum=$(python3 -c '
import hashlib, sys
h = hashlib.sha256()
buf = memoryview(bytearray(1 << 20))
src = sys.stdin.buffer.raw
with open(sys.argv[1], "wb", buffering=0) as f:
    while True:
        k = src.readinto(buf)
        if not k:
            break
        f.write(buf[:k])
        h.update(buf[:k])
print(h.hexdigest() + " *stdin")
' "$t") || { rm -f -- "$t"; exit 1; }
else
  # tee reads the channel itself (no head/cat in front: one copy of every byte less on the pool);
  # a stream longer or shorter than n is caught by the size check below
  # shellcheck disable=SC2086 # $H is a command with its options, split on purpose
  sum=$( { tee -- "$t" || : > "$t.failed"; } | $H ) || { rm -f -- "$t" "$t.failed"; exit 1; }
  if [ -e "$t.failed" ]; then rm -f -- "$t" "$t.failed"; exit 1; fi
fi
got=$(wc -c < "$t") || { rm -f -- "$t"; exit 1; }; got=$((got + 0))
if [ "$n" != "-" ] && [ "$got" != "$n" ]; then rm -f -- "$t"; echo "received $got bytes where $n were sent (connection lost, or the source changed?)" >&2; exit 3; fi
if [ "$m" != "-" ]; then chmod "$m" -- "$t" || { rm -f -- "$t"; exit 1; }; fi
printf 'size %s\n%s\n' "$got" "$sum"
