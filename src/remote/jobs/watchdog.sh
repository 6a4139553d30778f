#!/bin/sh
# The job watchdog: parsl-sidecar starts one on each pool a job uses (over the SSH layer's
# spawn/exec, as `sh -c PROGRAM parsl-sidecar-watchdog JOB BOUND_S GRACE_MS RUN POOL_TAG`;
# src/jobs/watchdog-script.ts). POSIX sh and the usual tools; nothing to install.
#
# It reads lines on stdin from the sidecar:
#   `hb`                      heartbeat (the sidecar sends one every min(HEARTBEAT_S, bound/4))
#   `pg PGID [MARK]` / `unpg ..` a process group of the job on this host (a worker block); with
#                             MARK (`NAME=value`, e.g. PARSL_SIDECAR_BLOCK=<id>) the group is
#                             signalled only if a process of it carries MARK in its environment
#                             when the cleanup starts (checked where /proc and grep -z exist),
#                             so a pgid recorded on another login node behind the same pool
#                             name, or reused since, is left alone
#   `sj SCHED ID` / `unsj ..` a scheduler job (SCHED: slurm or pbspro)
#   `kill GRACE_MS`           clean up now, print one `done ...` line, exit
#   `stop`                    exit without cleaning (the sidecar cleaned up itself)
# Its state is in `~/.parsl-sidecar/watchdog/<job>-<run>-<pool>` on the host, shared by the
# instances of one run on one pool: when the SSH connection drops, the sidecar (reconnected)
# starts a new instance, which takes the state over (`owner`) and the old one exits quietly.
# `<pool>` names the sidecar's target: two pools of one job whose hosts share a home directory
# (two executors on one cluster) each keep their own state and instance, rather than taking
# each other's over in turn. An instance whose stdin ended, or that got no heartbeat, cleans up
# once the last heartbeat is older than BOUND seconds and no newer instance took over: SIGTERM to
# the groups and to every process whose environment has PARSL_SIDECAR_JOB=<job> (plus their
# groups and descendants), one scancel / qdel for all scheduler jobs, SIGKILL after the grace
# period. A state directory untouched for over a week (its watchdog was killed before removing
# it) is removed by the next watchdog on that host.

job=$1; bound=$2; grace=$3; run=$4; pool=$5; [ -n "$grace" ] || grace=5000
trap '' HUP PIPE
base=$HOME; [ -n "$base" ] || base=/tmp
mkdir -p "$base/.parsl-sidecar/watchdog" && chmod 700 "$base/.parsl-sidecar" "$base/.parsl-sidecar/watchdog" 2>/dev/null
# state no watchdog came back for (one killed before it removed it): a live one renames its beat
# file every heartbeat, which keeps its directory's time fresh
find "$base/.parsl-sidecar/watchdog" -mindepth 1 -maxdepth 1 -type d -mtime +7 -exec rm -rf {} + 2>/dev/null
d=$base/.parsl-sidecar/watchdog/$job-$run-$pool
mkdir -p "$d" || exit 1
beat() { date +%s > "$d/beat.$$" && mv -f "$d/beat.$$" "$d/beat"; }
touch "$d/pg" "$d/sj"; beat; echo $$ > "$d/owner"
read -r st < /proc/$$/stat 2>/dev/null
# shellcheck disable=SC2086 # the stat line is split into its fields on purpose
set -- $st
mypg=$5; [ -n "$mypg" ] || mypg=0
nap() { sleep "$1" 2>/dev/null || sleep 1; }
if printf 'x\000' | grep -qzx x 2>/dev/null; then gz=1; else gz=0; fi
marked() {
  [ -d /proc/self ] || return 0
  if [ "$gz" = 1 ]; then grep -lsaxzF "PARSL_SIDECAR_JOB=$job" /proc/[0-9]*/environ; else grep -lsaF "PARSL_SIDECAR_JOB=$job" /proc/[0-9]*/environ; fi 2>/dev/null | sed 's#/proc/\([0-9]*\)/environ#\1#'
}
# the recorded groups that are the job's here; during a cleanup, those checked when it started
groups() { if [ -f "$d/pg.ok" ]; then cat "$d/pg.ok"; else awk '{ print $1 }' "$d/pg" 2>/dev/null | sort -u; fi; }
# a group recorded with a marker counts only while one of its processes carries the marker
verify_groups() {
  sort -u "$d/pg" 2>/dev/null | while read -r g m; do
    case $g in ''|*[!0-9]*) continue ;; esac
    if [ -z "$m" ] || [ "$gz" != 1 ] || ! [ -r /proc/self/environ ]; then echo "$g"; continue; fi
    # shellcheck disable=SC2013 # file names from grep -l, one a line, /proc/N/environ (no spaces)
    for f in $(grep -lzxF -- "$m" /proc/[0-9]*/environ 2>/dev/null); do
      p=$(echo "$f" | cut -d/ -f3)
      if [ "$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f3)" = "$g" ]; then echo "$g"; break; fi
    done
  done | sort -u
}
# live processes of the job: in one of its groups, marked or in a marked one's group, and all their
# descendants; one already exiting (PF_EXITING in its flags, a SIGKILL taken) is as good as gone
targets() {
  [ -d /proc/self ] || { for g in $(groups); do kill -s 0 -- "-$g" 2>/dev/null && echo "-$g"; done; return 0; }
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v groups="$(groups | tr '\n' ' ')" -v marked="$(marked | tr '\n' ' ')" -v mypg="$mypg" '
    BEGIN { n = split(groups, g, " "); for (i = 1; i <= n; i++) G[g[i]] = 1; n = split(marked, m, " "); for (i = 1; i <= n; i++) M[m[i]] = 1 }
    { s = $0; p = 0; r = s; while ((k = index(r, ")")) > 0) { p += k; r = substr(r, k + 1) }
      split(substr(s, p + 2), f, " "); pid = s + 0; st[pid] = f[1]; pp[pid] = f[2]; pg[pid] = f[3]; ex[pid] = int(f[7] / 4) % 2 }
    END { for (pid in M) if ((pid in pg) && pg[pid] != mypg && pg[pid] > 1) G[pg[pid]] = 1
          for (pid in st) if (pg[pid] != mypg && ((pg[pid] in G) || (pid in M))) T[pid] = 1
          do { more = 0; for (pid in st) if (!(pid in T) && (pp[pid] in T) && pg[pid] != mypg) { T[pid] = 1; more = 1 } } while (more)
          for (pid in T) if (st[pid] != "Z" && st[pid] != "X" && !ex[pid] && pid > 1) print pid }'
}
cleanup() {
  mkdir "$d/cleaning" 2>/dev/null || return 0
  verify_groups > "$d/pg.ok.$$" && mv -f "$d/pg.ok.$$" "$d/pg.ok"
  ng=$(groups | grep -c .); seen=0; left=0
  for g in $(groups); do kill -s TERM -- "-$g" 2>/dev/null; done
  for p in $(targets); do kill -s TERM -- "$p" 2>/dev/null; kill -s CONT -- "$p" 2>/dev/null; seen=$((seen + 1)); done
  ids=$(sort -u "$d/sj" | awk '$1 == "slurm" { printf "%s ", $2 }'); ns=0
  # shellcheck disable=SC2086 # the ids are one word each, given to scancel as separate arguments
  if [ -n "$ids" ]; then ns=$(echo $ids | wc -w); scancel $ids >/dev/null 2>&1; fi
  ids=$(sort -u "$d/sj" | awk '$1 == "pbspro" { printf "%s ", $2 }'); nq=0
  # shellcheck disable=SC2086 # as above, for qdel
  if [ -n "$ids" ]; then nq=$(echo $ids | wc -w); qdel $ids >/dev/null 2>&1; fi
  t=0
  while [ -n "$(targets)" ] && [ "$t" -lt $((grace / 200)) ]; do nap 0.2; t=$((t + 1)); done
  # SIGKILL in rounds until a scan finds nothing (at most 20); what the last scan found is left
  r=0
  while :; do
    live=$(targets)
    [ -z "$live" ] || [ "$r" -ge 20 ] && break
    for g in $(groups); do kill -s KILL -- "-$g" 2>/dev/null; done
    for p in $live; do kill -s KILL -- "$p" 2>/dev/null; done
    nap 0.1; r=$((r + 1))
  done
  left=$(echo "$live" | grep -c .); surv=
  # name what would not die (pid:command:state:group), a few at most
  for p in $(echo "$live" | head -n 5); do
    s=$(sed -n 's/^[0-9]* (\(.*\)) \([A-Za-z]\) [0-9]* \([0-9]*\) .*/\1:\2:\3/p' "/proc/$p/stat" 2>/dev/null | tr -c 'A-Za-z0-9:._\n-' '_')
    [ -n "$s" ] || continue; [ -n "$surv" ] && surv="$surv,"; surv="$surv$p:$s"
  done
  [ -n "$surv" ] && surv=" survivors=$surv"
  echo "done groups=$ng processes=$seen slurm=$ns pbspro=$nq left=$left$surv"
}
leader() { [ "$mypg" = "$$" ]; }
mine() { [ "$(cat "$d/owner" 2>/dev/null)" = "$$" ]; }
# wait for heartbeats; clean up when the last is older than the bound, unless a newer instance took over
watch() {
  while :; do
    nap 2
    [ -d "$d" ] && mine || return 1
    # the beat file is replaced by rename, never seen half-written; an unreadable one is skipped
    last=$(cat "$d/beat" 2>/dev/null); now=$(date +%s)
    case $last in ''|*[!0-9]*) continue ;; esac
    if [ $((now - last)) -gt "$bound" ]; then cleanup; rm -rf "$d"; return 0; fi
  done
}
( watch; leader && kill -s KILL -- "-$mypg" 2>/dev/null; kill -s KILL $$ 2>/dev/null ) </dev/null >/dev/null 2>&1 &
checker=$!
echo "ready $$ $mypg"
while read -r cmd arg1 arg2; do
  case $cmd in
    hb) beat ;;
    pg) l=$arg1; [ -n "$arg2" ] && l="$arg1 $arg2"; echo "$l" >> "$d/pg" ;;
    unpg) l=$arg1; [ -n "$arg2" ] && l="$arg1 $arg2"; grep -vx "$l" "$d/pg" > "$d/pg.n"; mv "$d/pg.n" "$d/pg" ;;
    sj) echo "$arg1 $arg2" >> "$d/sj" ;;
    unsj) grep -vx "$arg1 $arg2" "$d/sj" > "$d/sj.n"; mv "$d/sj.n" "$d/sj" ;;
    kill) [ -n "$arg1" ] && grace=$arg1; kill "$checker" 2>/dev/null; cleanup; rm -rf "$d"; exit 0 ;;
    stop) kill "$checker" 2>/dev/null; mine && rm -rf "$d"; echo "stopped"; exit 0 ;;
  esac
done
# stdin ended: the sidecar or its connection is gone; it may come back with a new instance
kill "$checker" 2>/dev/null
watch
leader && kill -s KILL -- "-$mypg" 2>/dev/null
exit 0
