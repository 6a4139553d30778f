#!/bin/sh
# What a host has, in one round trip (src/env/probe.ts): `sh -c PROGRAM parsl-sidecar-probe
# BACKEND NAME PREFIX CONDA_DIR UV UV_BOOTSTRAP RECORD VERSIONS_PY`. BACKEND is conda or uv;
# PREFIX, CONDA_DIR, UV and UV_BOOTSTRAP are paths (empty when not given; `~` already expanded
# by the caller's shell word), RECORD the record file's path inside the prefix, VERSIONS_PY the
# text of env/versions.py. Prints `key=value` lines: home, hostname, uname, path, flock,
# python3, conda_dir, conda_dir_exists, conda_dir_tool, path_tool, uv, prefix, prefix_state
# (conda, venv, empty, other, missing), record, versions or versions_error, activate_script
# (repeated). Always exits 0.
P_BACKEND=$1; P_NAME=$2; P_PREFIX=$3; P_CONDA_DIR=$4; P_UV=$5; P_UVBOOT=$6; P_RECORD=$7; VPY=$8
say() { printf '%s=%s\n' "$1" "$2" | tr -d '\r'; }
say home "$HOME"; say hostname "$(hostname 2>/dev/null || uname -n)"; say uname "$(uname -sm 2>/dev/null)"; say path "$PATH"
command -v flock >/dev/null 2>&1 && say flock 1
PY3=$(command -v python3 2>/dev/null || command -v python 2>/dev/null) && [ -n "$PY3" ] && say python3 "$PY3"
PFX=""
if [ "$P_BACKEND" = conda ]; then
  if [ -n "$P_CONDA_DIR" ]; then
    say conda_dir "$P_CONDA_DIR"; [ -e "$P_CONDA_DIR" ] && say conda_dir_exists 1
    for c in bin/conda condabin/conda bin/mamba bin/micromamba; do [ -x "$P_CONDA_DIR/$c" ] && { say conda_dir_tool "$P_CONDA_DIR/$c"; break; }; done
  fi
  T=""
  for c in conda mamba micromamba; do T=$(command -v $c 2>/dev/null) && [ -n "$T" ] && case "$T" in /*) say path_tool "$T"; break;; esac; T=""; done
  if [ -n "$P_PREFIX" ]; then PFX="$P_PREFIX"
  elif [ -n "$P_CONDA_DIR" ]; then PFX="$P_CONDA_DIR/envs/$P_NAME"
  elif [ -n "$T" ]; then
    case "$T" in
      */micromamba) R="${MAMBA_ROOT_PREFIX:-$HOME/micromamba}";;
      *) R=$(dirname "$(dirname "$(readlink -f "$T" 2>/dev/null || echo "$T")")");;
    esac
    if [ -w "$R/envs" ] || { [ ! -e "$R/envs" ] && [ -w "$R" ]; }; then PFX="$R/envs/$P_NAME"; else PFX="$HOME/.conda/envs/$P_NAME"; fi
  fi
else
  if [ -n "$P_UV" ]; then [ -x "$P_UV" ] && say uv "$P_UV"
  else
    # shellcheck disable=SC2015 # the fallback runs when either part fails, as intended
    U=$(command -v uv 2>/dev/null) && [ -n "$U" ] && say uv "$U" || { [ -x "$P_UVBOOT/bin/uv" ] && say uv "$P_UVBOOT/bin/uv"; }
  fi
  if [ -n "$P_PREFIX" ]; then PFX="$P_PREFIX"; else PFX="$HOME/.parsl-sidecar/envs/$P_NAME"; fi
fi
if [ -n "$PFX" ]; then
  say prefix "$PFX"
  if [ -d "$PFX/conda-meta" ]; then say prefix_state conda
  elif [ -f "$PFX/pyvenv.cfg" ]; then say prefix_state venv
  elif [ -d "$PFX" ] && [ -z "$(ls -A "$PFX" 2>/dev/null)" ]; then say prefix_state empty
  elif [ -e "$PFX" ]; then say prefix_state other
  else say prefix_state missing; fi
  [ -f "$PFX/$P_RECORD" ] && say record "$(head -c 65536 "$PFX/$P_RECORD" | tr -d '\n')"
  if [ -x "$PFX/bin/python" ]; then
    # shellcheck disable=SC2015 # versions_error also when say itself fails, as before
    O=$("$PFX/bin/python" -c "$VPY" 2>&1) && say versions "$(printf '%s\n' "$O" | tail -n 1)" || say versions_error "$(printf '%s' "$O" | tail -n 3 | tr '\n' ' ')"
  fi
  for f in "$PFX"/etc/conda/activate.d/*.sh; do [ -f "$f" ] && say activate_script "$f"; done
fi
exit 0
