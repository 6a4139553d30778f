/**
 * The watchdog sent to each pool a job uses (POSIX sh, run through the SSH layer's spawn/exec;
 * nothing to install). It reads lines on stdin from the sidecar:
 *   `hb`                      heartbeat (the sidecar sends one every HEARTBEAT_S)
 *   `pg PGID` / `unpg PGID`   a process group of the job on this host (worker pool, relay)
 *   `sj SCHED ID` / `unsj ..` a scheduler job (SCHED: slurm or pbspro)
 *   `kill GRACE_MS`           clean up now, print one `done ...` line, exit
 *   `stop`                    exit without cleaning (the sidecar cleaned up itself)
 * and cleans up by itself when stdin ends (the sidecar or its connection died) or no heartbeat
 * came for BOUND seconds (the network is gone): SIGTERM to the groups and to every process whose
 * environment has PARSL_SIDECAR_JOB=<job> plus their descendants, one scancel / qdel for all
 * scheduler jobs, SIGKILL after the grace period.
 */

export const WATCHDOG_SCRIPT = String.raw`
job=$1; bound=$2; grace=$3; [ -n "$grace" ] || grace=5000
trap '' HUP PIPE
tmp=$TMPDIR; [ -n "$tmp" ] || tmp=/tmp
d=$(mktemp -d "$tmp/parsl-sidecar-wd.XXXXXX") || exit 1
: > "$d/pg"; : > "$d/sj"; date +%s > "$d/beat"
read -r st < /proc/$$/stat 2>/dev/null; set -- $st; mypg=$5; [ -n "$mypg" ] || mypg=0
nap() { sleep "$1" 2>/dev/null || sleep 1; }
if printf 'x\000' | grep -qzx x 2>/dev/null; then gz=1; else gz=0; fi
marked() {
  [ -d /proc/self ] || return 0
  if [ "$gz" = 1 ]; then grep -lsaxzF "PARSL_SIDECAR_JOB=$job" /proc/[0-9]*/environ; else grep -lsaF "PARSL_SIDECAR_JOB=$job" /proc/[0-9]*/environ; fi 2>/dev/null | sed 's#/proc/\([0-9]*\)/environ#\1#'
}
# live processes of the job: in one of its groups, marked or in a marked one's group, and all their descendants
targets() {
  [ -d /proc/self ] || { for g in $(cat "$d/pg"); do kill -s 0 -- "-$g" 2>/dev/null && echo "-$g"; done; return 0; }
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v groups="$(cat "$d/pg" | tr '\n' ' ')" -v marked="$(marked | tr '\n' ' ')" -v mypg="$mypg" '
    BEGIN { n = split(groups, g, " "); for (i = 1; i <= n; i++) G[g[i]] = 1; n = split(marked, m, " "); for (i = 1; i <= n; i++) M[m[i]] = 1 }
    { s = $0; p = 0; r = s; while ((k = index(r, ")")) > 0) { p += k; r = substr(r, k + 1) }
      split(substr(s, p + 2), f, " "); pid = s + 0; st[pid] = f[1]; pp[pid] = f[2]; pg[pid] = f[3] }
    END { for (pid in M) if ((pid in pg) && pg[pid] != mypg && pg[pid] > 1) G[pg[pid]] = 1
          for (pid in st) if (pg[pid] != mypg && ((pg[pid] in G) || (pid in M))) T[pid] = 1
          do { more = 0; for (pid in st) if (!(pid in T) && (pp[pid] in T) && pg[pid] != mypg) { T[pid] = 1; more = 1 } } while (more)
          for (pid in T) if (st[pid] != "Z" && st[pid] != "X" && pid > 1) print pid }'
}
cleanup() {
  mkdir "$d/cleaning" 2>/dev/null || return 0
  ng=$(grep -c . "$d/pg"); seen=0; left=0
  for g in $(cat "$d/pg"); do kill -s TERM -- "-$g" 2>/dev/null; done
  for p in $(targets); do kill -s TERM -- "$p" 2>/dev/null; kill -s CONT -- "$p" 2>/dev/null; seen=$((seen + 1)); done
  ids=$(awk '$1 == "slurm" { printf "%s ", $2 }' "$d/sj"); ns=0
  if [ -n "$ids" ]; then ns=$(echo $ids | wc -w); scancel $ids >/dev/null 2>&1; fi
  ids=$(awk '$1 == "pbspro" { printf "%s ", $2 }' "$d/sj"); nq=0
  if [ -n "$ids" ]; then nq=$(echo $ids | wc -w); qdel $ids >/dev/null 2>&1; fi
  t=0
  while [ -n "$(targets)" ] && [ "$t" -lt $((grace / 200)) ]; do nap 0.2; t=$((t + 1)); done
  r=0
  while [ "$r" -lt 20 ]; do
    live=$(targets); [ -z "$live" ] && break
    for g in $(cat "$d/pg"); do kill -s KILL -- "-$g" 2>/dev/null; done
    for p in $live; do kill -s KILL -- "$p" 2>/dev/null; done
    nap 0.1; r=$((r + 1))
  done
  left=$(targets | grep -c .)
  echo "done groups=$ng processes=$seen slurm=$ns pbspro=$nq left=$left"
}
suicide() { [ "$mypg" = "$$" ] && kill -s KILL -- "-$mypg" 2>/dev/null; exit 0; }
finish() { cleanup; rm -rf "$d"; suicide; }
( while :; do
    nap 2
    [ -d "$d" ] || exit 0
    last=$(cat "$d/beat" 2>/dev/null || echo 0); now=$(date +%s)
    if [ $((now - last)) -gt "$bound" ]; then cleanup; rm -rf "$d"; [ "$mypg" = "$$" ] && kill -s KILL -- "-$mypg" 2>/dev/null; kill -KILL $$ 2>/dev/null; exit 0; fi
  done ) </dev/null >/dev/null 2>&1 &
checker=$!
echo "ready $$ $mypg"
while read -r cmd arg1 arg2; do
  case $cmd in
    hb) date +%s > "$d/beat" ;;
    pg) echo "$arg1" >> "$d/pg" ;;
    unpg) grep -vx "$arg1" "$d/pg" > "$d/pg.n"; mv "$d/pg.n" "$d/pg" ;;
    sj) echo "$arg1 $arg2" >> "$d/sj" ;;
    unsj) grep -vx "$arg1 $arg2" "$d/sj" > "$d/sj.n"; mv "$d/sj.n" "$d/sj" ;;
    kill) [ -n "$arg1" ] && grace=$arg1; kill "$checker" 2>/dev/null; cleanup; rm -rf "$d"; exit 0 ;;
    stop) kill "$checker" 2>/dev/null; rm -rf "$d"; echo "stopped"; exit 0 ;;
  esac
done
kill "$checker" 2>/dev/null
finish
`;

/** Seconds between heartbeats sent to each watchdog. */
export const HEARTBEAT_S = 5;
/** Default bound: without a heartbeat for this long, a watchdog cleans up the job on its pool. */
export const DEFAULT_WATCHDOG_BOUND_S = 30;

/** The shell command that starts the watchdog for a job (bound in seconds, grace in ms). */
export function watchdogCommand(jobId: string, boundS: number, graceMs: number, quote: (s: string) => string): string {
  return `sh -c ${quote(WATCHDOG_SCRIPT)} parsl-sidecar-watchdog ${quote(jobId)} ${Math.max(1, Math.round(boundS))} ${Math.max(0, Math.round(graceMs))}`;
}
