/**
 * Acting on a job from its record alone, without the process that supervises it: noticing that
 * its supervisor died (the job is `lost`) and cleaning up what is left, and `kill` when the
 * job's sidecar cannot be asked.
 */
import type { Hosts } from "../ssh/host.js";
import { killLocalJob } from "./local-kill.js";
import { cleanupTargets } from "./pool-watchdog.js";
import { procAlive, readProc } from "./proc.js";
import { isFinal, type JobRecord, type JobStore } from "./record.js";
import { sleep } from "../util/timeout.js";

export function supervisorAlive(rec: JobRecord): boolean {
  return procAlive(rec.supervisor.pid, rec.supervisor.start_time);
}

/** Everything of a job that could still run: local processes, then each pool (in parallel). */
export async function cleanupFromRecord(
  rec: JobRecord,
  hosts: Hosts,
  graceMs: number,
  exclude: number[] = [],
): Promise<NonNullable<JobRecord["cleanup"]>> {
  const groups = rec.resources.flatMap((r) => (r.kind === "local_group" ? [r.pgid] : []));
  const local = await killLocalJob(
    {
      jobId: rec.id,
      pgids: rec.pgid ? [rec.pgid, ...groups] : groups,
      known: rec.tracked,
      exclude: [rec.supervisor.pid, ...exclude],
    },
    graceMs,
  );
  const remote = await cleanupTargets(rec, hosts, graceMs);
  const errors = remote.flatMap((r) => (r.error ? [`${r.target}: ${r.error}`] : []));
  return {
    local_signalled: local.signalled,
    local_left: local.left,
    remote: remote.map((r) => ({ ...r })),
    errors,
  };
}

/**
 * If a running job's supervisor is gone, mark it `lost` and clean up what it left (here and on
 * its pools). Returns the record as it is now.
 */
export async function reconcile(
  store: JobStore,
  rec: JobRecord,
  hosts: Hosts,
  graceMs = 2000,
): Promise<JobRecord> {
  if (isFinal(rec.state) || supervisorAlive(rec)) return rec;
  const cleanup = await cleanupFromRecord(rec, hosts, graceMs);
  return store.update(rec.id, (r) => {
    if (isFinal(r.state)) return;
    r.state = "lost";
    r.ended_at = new Date().toISOString();
    r.reason = `its sidecar (pid ${r.supervisor.pid}) ended without closing the job; what was left was cleaned up`;
    r.cleanup = cleanup;
  });
}

/**
 * `kill` without the job's sidecar: mark the request, clean up from the record, and let the
 * supervisor (if it still runs) write how COMMAND ended; otherwise write it here.
 */
export async function killFromRecord(
  store: JobStore,
  rec: JobRecord,
  hosts: Hosts,
  graceMs: number,
): Promise<JobRecord> {
  store.update(
    rec.id,
    (r) =>
      (r.kill_requested ??= {
        at: new Date().toISOString(),
        by_pid: process.pid,
        grace_ms: graceMs,
      }),
  );
  const alive = supervisorAlive(rec);
  const cleanup = await cleanupFromRecord(rec, hosts, graceMs);
  // a stopped supervisor (SIGSTOP) cannot write how COMMAND ended: do not wait for it
  if (alive && readProc(rec.supervisor.pid)?.state !== "T") {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && supervisorAlive(rec)) {
      const now = store.read(rec.id);
      if (isFinal(now.state)) return now;
      await sleep(50); // `kill` waits for nothing else
    }
  }
  return store.update(rec.id, (r) => {
    if (isFinal(r.state)) return;
    r.state = alive ? "killed" : "lost";
    r.ended_at = new Date().toISOString();
    r.reason = alive
      ? "stopped by parsl-sidecar kill"
      : `its sidecar (pid ${r.supervisor.pid}) had died; stopped by parsl-sidecar kill`;
    r.cleanup = cleanup;
  });
}
