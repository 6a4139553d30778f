/**
 * Stopping every local process of a job: SIGTERM to all of them (process groups and stragglers
 * found by /proc walk and environment marker), a grace period in which new ones are signalled
 * too, then SIGKILL in rounds until a scan finds nothing (a process can only fork while alive, so
 * rounds converge).
 */
import { listProcs, type ProcInfo } from "./proc.js";
import type { ProcRef } from "./record.js";
import { collectJobProcesses, type JobProcessSpec } from "./tree.js";
import { sleep } from "../util/timeout.js";

export interface LocalKillResult {
  /** processes that were signalled */
  signalled: number;
  /** processes still alive at the end (0 unless they belong to another user or are stuck in D state) */
  left: number;
  /** every process found, for the record */
  seen: ProcRef[];
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already, or not ours
  }
}

/** Kill a job's local processes: SIGTERM, wait up to graceMs, then SIGKILL. */
export async function killLocalJob(
  spec: JobProcessSpec,
  graceMs: number,
): Promise<LocalKillResult> {
  const seen = new Map<string, ProcRef>();
  const termed = new Set<string>();
  const remember = (ps: ProcInfo[]): void => {
    for (const p of ps)
      seen.set(`${p.pid}:${p.startTime}`, { pid: p.pid, start_time: p.startTime });
  };
  // processes found once stay found: after their parent dies they are reparented to init
  const scan = (): ProcInfo[] => {
    const ps = collectJobProcesses(
      { ...spec, known: [...spec.known, ...seen.values()] },
      listProcs(),
    );
    remember(ps);
    return ps;
  };

  // the sleeps below are ref'd: `parsl-sidecar kill` may have nothing else keeping it running
  for (const g of spec.pgids) signal(-g, "SIGTERM");
  let live = scan();
  const deadline = Date.now() + graceMs;
  while (live.length > 0) {
    for (const p of live) {
      const key = `${p.pid}:${p.startTime}`;
      if (!termed.has(key)) {
        termed.add(key);
        signal(p.pid, "SIGTERM");
      }
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
    live = scan();
  }
  for (let round = 0; round < 100 && live.length > 0; round++) {
    for (const g of spec.pgids) signal(-g, "SIGKILL");
    for (const p of live) signal(p.pid, "SIGKILL");
    await sleep(round < 5 ? 10 : 50);
    live = scan();
  }
  return { signalled: seen.size, left: live.length, seen: [...seen.values()] };
}
