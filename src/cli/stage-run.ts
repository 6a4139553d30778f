/** Runs one transfer in this process for `parsl-sidecar stage` (its own SSH pool, closed after). */
import type { ProgressSnapshot } from "../staging/progress.js";
import { StagingService, type TransferParams } from "../staging/service.js";
import { SshPool } from "../ssh/pool.js";

export async function runStage(p: TransferParams, onProgress: (s: ProgressSnapshot) => void): ReturnType<StagingService["transfer"]> {
  const pool = new SshPool();
  const service = new StagingService({ pool, concurrency: 1 });
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await service.transfer({ ...p, cliForms: true }, onProgress, stop.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await service.close();
    await pool.close();
  }
}
