/**
 * `run --executors FILE`: before COMMAND starts, complete the file in the sidecar (hosts, ports,
 * worker tunnels) with the job id as owner, write the completed copy beside the sidecar's
 * connection file, and give COMMAND its path as PARSL_SIDECAR_EXECUTORS. The job's teardown
 * releases the owner (tunnels, relays, blocks).
 */
import { join } from "node:path";
import { parseExecutorsText } from "../executors/index.js";
import type { ExecutorsService } from "../executors/service.js";
import { SidecarError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readFileSync } from "node:fs";
import type { JobPreparer } from "./job-context.js";

export const EXECUTORS_ENV = "PARSL_SIDECAR_EXECUTORS";

/**
 * What the preparer needs of the executors service: the service itself (its owners are released
 * by the job's teardown), or an RPC adapter with `release` (`run --connection`), called at the
 * job's tunnels stage.
 */
export type ExecutorsCompleter = Pick<ExecutorsService, "complete"> & {
  release?: (owner: string) => Promise<unknown>;
};

export function executorsPreparer(service: ExecutorsCompleter, outDir: string): JobPreparer {
  return {
    name: "executors",
    handles: ["executors"],
    async prepare(job) {
      if (!job.executors) return;
      let text: string;
      try {
        text = readFileSync(job.executors, "utf8");
      } catch (err) {
        throw new SidecarError(
          "EXECUTORS_INVALID",
          `Cannot read ${job.executors}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          { cause: err },
        );
      }
      const json = parseExecutorsText(text, job.executors);
      const release = service.release;
      if (release)
        job.onTeardown("tunnels", "executors", () => release(job.id).then(() => undefined));
      const res = await service.complete(
        {
          json,
          file: job.executors,
          reuse: true,
          signal: job.signal,
          progress: (label, message) => job.log.info({ job: job.id, label }, message),
        },
        job.id,
      );
      const out = join(outDir, `executors-${job.id}.json`);
      writeFileAtomic(out, `${JSON.stringify(res.executors, null, 2)}\n`, { mode: 0o600 });
      for (const w of res.warnings) job.log.warn({ job: job.id }, w);
      return { env: { [EXECUTORS_ENV]: out } };
    },
  };
}
