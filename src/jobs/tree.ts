/**
 * Finding every local process of a job: its process groups, the processes it was seen to have,
 * every process whose environment carries PARSL_SIDECAR_JOB=<id> (daemons that left the group by
 * setsid or a double fork keep it), and all their descendants by parent links.
 */
import { hasEnvEntry, isGone, JOB_ENV, listProcs, type ProcInfo } from "./proc.js";
import type { ProcRef } from "./record.js";

export interface JobProcessSpec {
  jobId: string;
  /** process groups of the job (COMMAND's, local worker groups) */
  pgids: number[];
  /** processes seen earlier (pid + start time guard against pid reuse) */
  known: ProcRef[];
  /** pids never to touch: this process, the supervisor, the sidecar */
  exclude: number[];
  /** look for the environment marker too (reads /proc/PID/environ of every process) */
  scanEnv?: boolean;
  /**
   * start time (clock ticks since boot) before which no process of the job can have started, e.g.
   * the supervising process's own: older processes cannot carry the marker, so their environment
   * is not read (on a busy machine most processes are older than the job)
   */
  notBefore?: number;
}

/** The job's live processes (zombies are dead and left out). */
export function collectJobProcesses(
  spec: JobProcessSpec,
  procs: ProcInfo[] = listProcs(),
): ProcInfo[] {
  const exclude = new Set([process.pid, ...spec.exclude]);
  const pgids = new Set(spec.pgids);
  const known = new Set(spec.known.map((r) => `${r.pid}:${r.start_time}`));
  const marker = `${JOB_ENV}=${spec.jobId}`;
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    const list = byParent.get(p.ppid);
    if (list) list.push(p);
    else byParent.set(p.ppid, [p]);
  }
  const found = new Map<number, ProcInfo>();
  const queue: ProcInfo[] = [];
  const add = (p: ProcInfo): void => {
    if (found.has(p.pid) || exclude.has(p.pid) || p.pid <= 1) return;
    found.set(p.pid, p);
    queue.push(p);
  };
  for (const p of procs) {
    if (
      pgids.has(p.pgid) ||
      known.has(`${p.pid}:${p.startTime}`) ||
      (spec.scanEnv !== false &&
        !isGone(p) &&
        p.startTime >= (spec.notBefore ?? 0) &&
        hasEnvEntry(p.pid, marker))
    )
      add(p);
  }
  // the groups that marked processes belong to (a daemon's group leader may have set the marker
  // only for its children), except the groups of the processes never to touch
  const safeGroups = new Set(procs.filter((p) => exclude.has(p.pid)).map((p) => p.pgid));
  const moreGroups = new Set(
    [...found.values()]
      .map((p) => p.pgid)
      .filter((g) => g > 1 && !pgids.has(g) && !safeGroups.has(g)),
  );
  for (const p of procs) if (moreGroups.has(p.pgid)) add(p);
  while (queue.length > 0) {
    const p = queue.pop()!;
    for (const c of byParent.get(p.pid) ?? []) add(c);
  }
  return [...found.values()].filter((p) => !isGone(p));
}

/** Descendants of `roots` by parent links (cheap: no environment reads). */
export function descendantsOf(rootPids: number[], procs: ProcInfo[] = listProcs()): ProcInfo[] {
  const byParent = new Map<number, ProcInfo[]>();
  for (const p of procs) {
    const list = byParent.get(p.ppid);
    if (list) list.push(p);
    else byParent.set(p.ppid, [p]);
  }
  const out: ProcInfo[] = [];
  const seen = new Set<number>();
  const queue = [...rootPids];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    for (const c of byParent.get(pid) ?? []) {
      if (seen.has(c.pid)) continue;
      seen.add(c.pid);
      out.push(c);
      queue.push(c.pid);
    }
  }
  return out;
}
