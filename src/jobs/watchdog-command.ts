/**
 * How the sidecar starts a job's watchdog on a pool (the program is src/remote/jobs/watchdog.sh,
 * which says what it does and reads) and the timing it is started with.
 */
import { createHash } from "node:crypto";
import { shCommand } from "../remote/index.js";

/** Seconds between heartbeats sent to each watchdog. */
export const HEARTBEAT_S = 5;
/** Default bound: without a heartbeat for this long, a watchdog cleans up the job on its pool. */
export const DEFAULT_WATCHDOG_BOUND_S = 30;

/**
 * The shell command that starts the watchdog for a job (bound in seconds, grace in ms); `run`
 * names this run of the job (its supervisor's pid and start time), so that a reused --job name
 * never meets an old run's state; `target` (the pool as the sidecar names it) keeps each pool's
 * state apart where pools share a home directory.
 */
export function watchdogCommand(
  jobId: string,
  run: string,
  boundS: number,
  graceMs: number,
  target: string,
): string {
  if (!/^[A-Za-z0-9._-]+$/.test(jobId) || !/^[A-Za-z0-9._-]+$/.test(run))
    throw new Error(`bad job id or run for a watchdog: ${jobId} ${run}`);
  return shCommand("jobs/watchdog.sh", [
    jobId,
    Math.max(1, Math.round(boundS)),
    Math.max(0, Math.round(graceMs)),
    run,
    poolTag(target),
  ]);
}

/**
 * A file-name-safe tag for a target: its readable part (other characters as `_`, at most 40)
 * and 8 hex digits of its SHA-256, so that targets differing only in those characters differ.
 */
export function poolTag(target: string): string {
  const readable = target.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 40);
  return `${readable}-${createHash("sha256").update(target).digest("hex").slice(0, 8)}`;
}
