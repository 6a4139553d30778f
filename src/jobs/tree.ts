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
}

/** The job's live processes (zombies are dead and left out). */
export function collectJobProcesses(spec: JobProcessSpec, procs: ProcInfo[] = listProcs()): ProcInfo[] {
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
  for (const p of procs) {
    if (exclude.has(p.pid) || p.pid <= 1) continue;
    if (pgids.has(p.pgid) || known.has(`${p.pid}:${p.startTime}`) || (spec.scanEnv !== false && !isGone(p) && hasEnvEntry(p.pid, marker))) {
      found.set(p.pid, p);
      queue.push(p);
    }
  }
  while (queue.length > 0) {
    const p = queue.pop()!;
    for (const c of byParent.get(p.pid) ?? []) {
      if (found.has(c.pid) || exclude.has(c.pid)) continue;
      found.set(c.pid, c);
      queue.push(c);
    }
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
