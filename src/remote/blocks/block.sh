#!/bin/sh
# A worker block on a pool (src/blocks/): run its script so that it outlives its SSH channel, and
# look at, follow, signal and clean up after it later, over the same or a new connection.
# parsl-sidecar sends it as `sh -c PROGRAM parsl-sidecar-block COMMAND ID ARGS...`
# (src/blocks/commands.ts), ID being the block's id (letters, digits, - and _):
#   run ID SCRIPT         run SCRIPT (bash: Parsl's launcher output) with bash -c; exits with its
#                         status, or dies of the signal that ended it
#   look ID PGID          prints `elsewhere` (another host runs it: nothing can be told from here),
#                         `alive`, or `gone` and then the status line its shell left, if any
#   follow ID PGID OUT ERR  prints the block's output from byte OUT of its stdout file (to stdout)
#                         and byte ERR of its stderr file (to stderr) until its shell ends;
#                         exit 3: no files (it wrote to its channel), 4: another host or no shell
#   rest ID OUT ERR       prints what its files hold from those bytes on, and exits
#   signal ID PGID SIG    kill -SIG -PGID, only while a process of the block is still here
#   remove ID             removes its files
# The files, in ~/.parsl-sidecar/blocks (mode 0700, files 0600): ID.out, ID.err (its output),
# ID.rc (`<status> <signal name or ->`, written when it ends) and ID.host (`uname -n` of the host
# its shell runs on: a pool's name may lead to one of several login nodes sharing a home).
# Every process of a block has PARSL_SIDECAR_BLOCK=ID in its environment (the sidecar sets it).
# One file for all the commands: they share the file names and the marker check, and a program
# sent on a command line cannot include another.

bad() {
  echo "parsl-sidecar-block: $*" >&2
  exit 2
}
num() { case $2 in '' | *[!0-9]*) bad "expected $1 to be a number, got '$2'" ;; esac; }

cmd=$1
id=$2
case $id in '' | *[!A-Za-z0-9_-]*) bad "expected a block id of letters, digits, - and _, got '$id'" ;; esac
d="$HOME/.parsl-sidecar/blocks"
o="$d/$id.out"
e="$d/$id.err"
r="$d/$id.rc"
h="$d/$id.host"

# the block's shell recorded another host than this one: its processes cannot be seen from here,
# so a look must not take them for gone
elsewhere() {
  [ -f "$h" ] && [ "$(cat "$h" 2>/dev/null)" != "$(uname -n)" ]
}
# where /proc and grep -z exist (Linux), /proc/N/environ files are read whole, NUL-separated
zgrep_ok() {
  [ -r /proc/self/environ ] && printf 'x\0' | grep -qzxF x 2>/dev/null
}
# a process of the block lives on this host: one whose environment carries the block's marker (so
# a group that reuses the block's id after a reboot is never taken for it, nor signalled), or,
# without /proc and grep -z, any process of its group
alive() {
  if zgrep_ok; then
    [ -n "$(grep -lzxF -- "PARSL_SIDECAR_BLOCK=$id" /proc/[0-9]*/environ 2>/dev/null | head -n 1)" ]
  else
    kill -0 -"$pgid" 2>/dev/null
  fi
}
group() {
  pgid=$1
  num PGID "$pgid"
  [ "$pgid" -gt 1 ] || bad "refusing to look for process group $pgid"
}

# What no sidecar came back for: the files of blocks that ended over a week ago (their status
# file is that old) and, where /proc and grep -z tell, of blocks of this host whose output has not
# changed for a week and of which no process is left (a SIGKILL leaves no status). A quiet block
# still running keeps its files.
sweep() {
  find "$d" -name 'blk-*.rc' -mtime +7 2>/dev/null | while read -r f; do
    b=${f%.rc}
    rm -f "$f" "$b.out" "$b.err" "$b.host"
  done
  zgrep_ok || return 0
  find "$d" -name 'blk-*.out' -mtime +7 2>/dev/null | while read -r f; do
    b=${f%.out}
    [ -e "$b.rc" ] && continue
    # only a block of this host: another login node sharing this home may run it
    [ "$(cat "$b.host" 2>/dev/null)" = "$(uname -n)" ] || continue
    grep -qzxF -- "PARSL_SIDECAR_BLOCK=${b##*/}" /proc/[0-9]*/environ 2>/dev/null || rm -f "$f" "$b.err" "$b.host"
  done
}

# A process writing to a channel whose connection dropped dies of SIGPIPE (a worker's first log
# line to stderr would end it), so the script writes to files and two `tail -f --pid` forward them
# to the channel while it lasts; this shell waits for the script, leaves its status in a file and
# exits with it (or dies of the signal that ended it). The files stay until the sidecar has read
# what it had not received and removes them (`remove`); the next block's shell sweeps what no
# sidecar came back for. Where `tail` has no --pid (not GNU coreutils) or the files cannot be
# made, the script writes to the channel as before.
run() {
  script=$1
  if tail --pid=$$ -n 0 /dev/null 2>/dev/null && (umask 077 && mkdir -p "$d" && : >"$o" && : >"$e" && uname -n >"$h") 2>/dev/null; then
    sweep
    trap '(umask 077 && echo "143 TERM" > "$r") 2>/dev/null; exit 143' TERM
    bash -c "$script" >"$o" 2>"$e" </dev/null &
    pid=$!
    tail -s 0.2 -n +1 -f --pid=$pid "$o" &
    tail -s 0.2 -n +1 -f --pid=$pid "$e" >&2 &
    wait $pid
    rc=$?
    wait
    sig=-
    if [ $rc -gt 128 ] && [ $rc -lt 160 ]; then sig=$(kill -l $rc 2>/dev/null) || sig=-; fi
    (umask 077 && echo "$rc $sig" >"$r") 2>/dev/null
    trap - TERM
    if [ $rc -gt 128 ] && [ $rc -lt 160 ]; then kill -$((rc - 128)) $$; fi
    exit $rc
  fi
  exec bash -c "$script"
}

case $cmd in
run)
  [ $# -eq 3 ] || bad "usage: run ID SCRIPT"
  run "$3"
  ;;
look)
  group "$3"
  if elsewhere; then echo elsewhere; elif alive; then echo alive; else
    echo gone
    cat "$r" 2>/dev/null
  fi
  exit 0
  ;;
follow)
  group "$3"
  num OUT "$4"
  num ERR "$5"
  # no files: it wrote to its old channel, there is nothing to follow
  [ -f "$o" ] && [ -f "$e" ] || exit 3
  # another host, or no shell left for --pid to follow: the next look tells which
  elsewhere && exit 4
  kill -0 "$pgid" 2>/dev/null || exit 4
  tail -s 0.2 -c +$(($4 + 1)) -f --pid="$pgid" "$o" &
  tail -s 0.2 -c +$(($5 + 1)) -f --pid="$pgid" "$e" >&2 &
  wait
  exit 0
  ;;
rest)
  num OUT "$3"
  num ERR "$4"
  if [ -f "$o" ]; then tail -c +$(($3 + 1)) "$o"; fi
  if [ -f "$e" ]; then tail -c +$(($4 + 1)) "$e" >&2; fi
  exit 0
  ;;
signal)
  group "$3"
  case $4 in '' | *[!A-Z0-9]*) bad "expected a signal name like TERM or KILL, got '$4'" ;; esac
  if ! elsewhere && alive; then kill -"$4" -"$pgid" 2>/dev/null; fi
  exit 0
  ;;
remove)
  rm -f "$o" "$e" "$r" "$h"
  ;;
*)
  bad "unknown command '$cmd'"
  ;;
esac
