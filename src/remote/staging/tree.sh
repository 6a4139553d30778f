#!/bin/sh
# A whole tree written on a pool in one exec (src/staging/stores/pool.ts, writeTree), as
# `sh -c PROGRAM parsl-sidecar-tree ROOT INSIDE BESIDE PARENT LENGTH`. stdin carries exactly
# LENGTH bytes of tar archive, then the SHA-256 (64 hex digits) the sender computed over them.
# The archive is extracted into a temporary directory (INSIDE, in ROOT when ROOT exists, else
# BESIDE it in PARENT, which is made if missing) while tee feeds a copy to openssl (sha256sum
# without it). Only when tar succeeded and both hashes agree is the tree put in place: renamed
# to ROOT when ROOT does not exist, else each file hard-linked (or copied) over the old one.
# A mismatch prints `psc-integrity got=HASH sent=HASH` and exits 4; any failure exits non-zero
# and leaves neither the temporary directory nor its .fifo and .sum behind. Needs GNU dd
# (`iflag=count_bytes`) to stop at the archive's end without reading past it.
root=$1; n=$5
case $n in '' | *[!0-9]*) echo "bad archive length: $n" >&2; exit 1 ;; esac
if [ -d "$root" ]; then tmp=$2; inside=1; else tmp=$3; inside=0; mkdir -p -- "$4" || exit 1; fi
mkdir -p -- "$tmp" || exit 1
fifo="$tmp.fifo"; sum="$tmp.sum"
mkfifo "$fifo" || { rm -rf -- "$tmp"; exit 1; }
if command -v openssl >/dev/null 2>&1; then H="openssl dgst -sha256 -r"; else H="sha256sum"; fi
# shellcheck disable=SC2086 # $H is a command with its options, split on purpose
$H < "$fifo" > "$sum" &
dd iflag=count_bytes,fullblock count="$n" bs=1M 2>/dev/null | tee "$fifo" | { tar -x -f - -C "$tmp" --no-same-owner; st=$?; cat > /dev/null; exit $st; }
st=$?; wait; rm -f -- "$fifo"
if [ "$st" != 0 ]; then rm -rf -- "$tmp" "$sum"; exit 1; fi
want=$(head -c 64); got=$(cut -c1-64 < "$sum"); rm -f -- "$sum"
if [ "$want" != "$got" ]; then echo "psc-integrity got=$got sent=$want"; rm -rf -- "$tmp"; exit 4; fi
merge() {
  { cp -alf -- "$tmp"/. "$root"/ 2>/dev/null || cp -af -- "$tmp"/. "$root"/; } || { rm -rf -- "$tmp"; exit 1; }
  rm -rf -- "$tmp"
}
if [ "$inside" = 1 ]; then merge
elif ! mv -T -- "$tmp" "$root" 2>/dev/null; then merge
fi
