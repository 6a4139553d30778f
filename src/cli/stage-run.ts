/** Runs one transfer in this process for `parsl-sidecar stage` (its own SshConnections, closed after). */
import type { ProgressSnapshot } from "../staging/progress.js";
import { StagingService, type TransferParams } from "../staging/service.js";
import { SshConnections } from "../ssh/connections.js";
import { answerPromptsInProcess } from "./prompts.js";

export async function runStage(
  p: TransferParams,
  onProgress: (s: ProgressSnapshot) => void,
): ReturnType<StagingService["transfer"]> {
  const connections = new SshConnections();
  // a pool that asks for a code is asked of this terminal
  const stopAnswering = answerPromptsInProcess(connections.prompts);
  const service = new StagingService({ hosts: connections, concurrency: 1 });
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await service.transfer({ ...p, cliForms: true }, onProgress, stop.signal);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    stopAnswering();
    await service.close();
    await connections.close();
  }
}
