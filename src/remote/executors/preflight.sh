#!/bin/sh
# The preflight checks of an executor on its pool, before any worker starts (src/executors/
# preflight.ts). Sent as `sh -c PROGRAM parsl-sidecar-preflight COMMAND ARGS...`:
#   python INIT PYTHON PROGRAM
#                        runs `PYTHON -c PROGRAM` in bash after INIT (the executor's
#                        WORKER_INIT, bash like Parsl's worker_init; may be empty), as a worker
#                        would start; used with versions.py
#   dirs DIR...          creates each DIR (mkdir -p) and prints, one a line, those it cannot
#                        create or write
#   commands NAME...     prints, one a line, the NAMEs the shell cannot find
#   dial PYTHON PROGRAM ADDRESSES PORT
#                        runs dial.py (PROGRAM) with PYTHON, its stderr to stdout, or with
#                        python3 when PYTHON cannot run it
# PYTHON is a command word as the executors file gives it (a name, or a path quoted if need be),
# so the shell reads it as it reads a worker's launch command. Exits 0 unless said otherwise.

cmd=$1
shift
case $cmd in
python)
  init=$1
  python=$2
  # the program goes by the environment and bash's positional parameters stay empty: an INIT
  # that sources a script (conda's activate) would take them for its own
  PARSL_SIDECAR_PROGRAM=$3
  export PARSL_SIDECAR_PROGRAM
  # shellcheck disable=SC2016 # expanded by bash, after INIT
  script="$python"' -c "$PARSL_SIDECAR_PROGRAM"'
  [ -n "$init" ] && script="$init
$script"
  # bash's $0 stays `bash`: its messages (a PYTHON not found) read as a worker's would
  exec bash -c "$script"
  ;;
dirs)
  for d in "$@"; do
    if mkdir -p "$d" 2>/dev/null && [ -w "$d" ]; then :; else echo "$d"; fi
  done
  exit 0
  ;;
commands)
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || echo "$c"
  done
  exit 0
  ;;
dial)
  python=$1
  program=$2
  shift 2
  sh -c "$python"' -c "$@"' sh "$program" "$@" 2>&1 || python3 -c "$program" "$@"
  ;;
*)
  echo "parsl-sidecar-preflight: unknown command '$cmd'" >&2
  exit 2
  ;;
esac
