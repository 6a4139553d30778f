#!/bin/sh
# Every command the sidecar runs over SSH runs under this (src/ssh/remote-command.ts), as
# `exec sh -c PROGRAM parsl-sidecar-wrapper SCRIPT`, so that it has a process group of its own
# whose id the sidecar learns and can signal whole (`kill -SIG -PGID`). sshd starts a session's
# command with setsid(), so this shell leads its group; if it does not and setsid(1) exists, it
# re-executes under setsid. Then it prints `\036pgid=PID` as the first line of stderr (the
# sidecar strips it) and becomes `sh -c SCRIPT sh`.
pg=; if [ -r /proc/$$/stat ]; then read -r _ _ _ _ pg _ < /proc/$$/stat; else pg=$(ps -o pgid= -p $$ 2>/dev/null | tr -d " "); fi
if [ -n "$pg" ] && [ "$pg" != "$$" ] && command -v setsid >/dev/null 2>&1; then
  # a new session leads its group by construction: only the last two steps are left to do
  # shellcheck disable=SC2016 # $$ and $1 are the inner shell's, expanded there
  exec setsid sh -c 'printf "\036pgid=%s\n" "$$" >&2; exec sh -c "$1" sh' parsl-sidecar-wrapper "$1"
fi
printf '\036pgid=%s\n' "$$" >&2
exec sh -c "$1" sh
