/** The shapes a job is started with, and the hook other services prepare a job through. */
import type { Logger } from "../util/logger.js";
import type { Closer, JobResource, TeardownStage } from "./resources.js";

export interface RunSpec {
  id: string;
  command: string[];
  cwd: string;
  /** COMMAND's environment (PARSL_SIDECAR_JOB is added) */
  env: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** grace between SIGTERM and SIGKILL at the end, on a timeout or a signal */
  graceMs: number;
  /** the sidecar serving the job (its connection file is recorded for `jobs` and `kill`) */
  sidecar: { pid: number; connection_file: string } | null;
  /** `run --executors FILE` (absolute), for the executors preparer */
  executors?: string;
  /** `run --env ...`, for the environments preparer */
  envs?: string[];
}

/** What a preparer gets: the job, and where to record what it starts for it. */
export interface JobContext {
  id: string;
  cwd: string;
  executors: string | undefined;
  envs: string[];
  /** COMMAND's environment so far (earlier preparers' changes included; read-only) */
  env: NodeJS.ProcessEnv;
  /** COMMAND so far */
  command: string[];
  /** record something started for the job (remote groups, scheduler jobs, tunnels) */
  addResource(r: JobResource): Promise<void>;
  /** run `close` when the job is torn down (stage remote, then tunnels) */
  onTeardown(stage: TeardownStage, name: string, close: Closer): () => void;
  /** aborted when the job is stopped while it is still being prepared */
  signal: AbortSignal;
  log: Logger;
}

/**
 * A step before COMMAND starts (environments, executors completion and tunnels). It may return
 * variables to set in COMMAND's environment (merged over `job.env`; an empty string blanks one)
 * and a new COMMAND; a throw fails the job (exit code 1) after teardown. `handles` names the run
 * options it serves (`executors`, `env`), so that run can refuse an option nobody serves;
 * preparers handling `env` run first (COMMAND's interpreter), then the others in the order added.
 */
export interface JobPreparer {
  name: string;
  handles: Array<"executors" | "env">;
  prepare(
    job: JobContext,
  ): Promise<{ env?: Record<string, string>; command?: string[] } | undefined>;
}
