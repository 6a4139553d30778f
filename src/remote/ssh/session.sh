#!/bin/sh
# The openssh transport runs every command under this (src/ssh/openssh/session.ts), as
# `exec sh -c PROGRAM parsl-sidecar-session COMMAND`. OpenSSH's client drops the exit-signal
# message, so this shell runs COMMAND as its child and reports on stderr: `\036psc:open` first
# (the session is open), then `\036psc:signal=NAME` or `\036psc:exit=N` once COMMAND ended.
# A shell cannot tell a signal from an exit with 128+N, so only N of 1-15 (HUP to TERM, what
# kills processes) counts as a signal: qsub's exit 170 is an exit. The sidecar strips both lines. Its own stderr is /dev/null while it waits, so
# that the shell's "Terminated" note for a killed child does not reach the caller.
exec 3>&2 2>/dev/null
# COMMAND's parent is this shell, not sshd: what needs this connection's sshd process (a tunnel's
# reclaim after a reconnect) reads it here
PARSL_SIDECAR_SSHD_PID=$PPID
export PARSL_SIDECAR_SSHD_PID
printf '\036psc:open\n' >&3
sh -c "exec 2>&3 3>&-
$1" sh
s=$?
if [ "$s" -gt 128 ] && [ "$s" -le 143 ] && n=$(kill -l "$s") && [ -n "$n" ]; then
  printf '\036psc:signal=%s\n' "${n#SIG}" >&3
else
  printf '\036psc:exit=%s\n' "$s" >&3
fi
exit "$s"
