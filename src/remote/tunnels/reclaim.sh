#!/bin/sh
# Run over a new SSH connection after a reconnect (docs/tunnels.md, "Reconnection, and the
# bound"), as `sh -c PROGRAM parsl-sidecar-reclaim BOOT_ID SESSION_PID RELAY_PGID OWN_SSHD_PID`
# (src/tunnels/pool-commands.ts): ends what the previous connection left holding the tunnel's
# ports on the pool when that connection is dead at the sidecar but still alive here (a network
# drop: sshd keeps the session, and its listener, until it notices).
#   BOOT_ID      the machine's boot id when the previous connection was checked: on another
#                machine (a login-node alias that led elsewhere) or after a reboot, nothing is done
#   SESSION_PID  the previous connection's sshd process: killed if it is ours and is `sshd` or
#                `sshd-session`, and is not OWN_SSHD_PID (this connection's, the caller's $PPID)
#   RELAY_PGID   the previous plain relay's process group (may be empty): killed if its leader
#                is ours, its command line is relay.py (the `LISTEN %s %d` of its text, which
#                travels on it), and it is not this program's own group; with it the shells
#                between its leader and SESSION_PID (over openssh, the session program that
#                started the relay), which are there only for the relay
# Prints `KILLED session <pid>` / `KILLED relay <pgid>` for what it ended, then waits (at most
# 2 s) for both to be gone, so that their listeners are released. Exits 0.

boot=$1; S=$2; G=$3; here=$4
[ "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" = "$boot" ] || exit 0
me=$(id -u)
mine() { [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(stat -c %u "/proc/$1" 2>/dev/null)" = "$me" ]; }
ppid() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f2; }
# read before the session goes (its children are then re-parented)
chain=
if [ -n "$G" ] && [ -n "$S" ]; then
  p=$(ppid "$G"); n=0
  while [ -n "$p" ] && [ "$p" != "$S" ] && [ "$p" -gt 1 ] && [ $n -lt 5 ]; do
    chain="$chain $p"; p=$(ppid "$p"); n=$((n + 1))
  done
  [ "$p" = "$S" ] || chain=
fi
if mine "$S" && [ "$S" != "$here" ]; then
  case "$(cat "/proc/$S/comm" 2>/dev/null)" in
    sshd|sshd-session) kill -KILL "$S" 2>/dev/null && echo "KILLED session $S";;
  esac
fi
if mine "$G" && [ "$G" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] && grep -qa 'LISTEN %s %d' "/proc/$G/cmdline" 2>/dev/null; then
  kill -KILL "-$G" 2>/dev/null && echo "KILLED relay $G"
  for p in $chain; do mine "$p" && kill -KILL "$p" 2>/dev/null; done
fi
# alive: there and not a zombie
alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
i=0
while [ $i -lt 20 ] && { alive "$S" || alive "$G"; }; do sleep 0.1; i=$((i+1)); done
true
