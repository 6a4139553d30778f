/**
 * What other services start for a job, so that `kill` (and the end of `run`) can clean it all up:
 * remote process groups (worker pools, relays), scheduler jobs (Slurm, PBS Pro), tunnels, and
 * in-process close callbacks. A leaf module (imports only zod), so that executors and tunnels can
 * use it without importing the rest of src/jobs.
 */
import { z } from "zod";

export const JobResourceSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("remote_group"),
    /** `local` or the ssh target the pool is reached by */
    target: z.string().min(1),
    /** process-group id on that host (HostProcess.pgid) */
    pgid: z.number().int().positive(),
    /**
     * `NAME=value` every process of the group carries in its environment (a worker block's
     * `PARSL_SIDECAR_BLOCK=<id>`): the group is signalled only while a process of it carries
     * this, so a pgid recorded on another login node behind the same pool name, or reused
     * since, is left alone
     */
    mark: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]*=[A-Za-z0-9_.-]+$/, "NAME=value")
      .optional(),
    label: z.string().optional(),
  }),
  z.object({
    kind: z.literal("scheduler_job"),
    target: z.string().min(1),
    scheduler: z.enum(["slurm", "pbspro"]),
    /** the scheduler's job id (sbatch --parsable / qsub output) */
    id: z.string().regex(/^[A-Za-z0-9._[\]-]+$/, "a scheduler job id"),
    label: z.string().optional(),
  }),
  z.object({
    kind: z.literal("tunnel"),
    id: z.string().min(1),
    target: z.string().optional(),
    description: z.string().optional(),
    /** the tunnel runs a relay on `target` (marked with the job's id): the pool's watchdog ends it */
    relay: z.boolean().optional(),
  }),
  z.object({
    kind: z.literal("local_group"),
    pgid: z.number().int().positive(),
    label: z.string().optional(),
  }),
]);
export type JobResource = z.infer<typeof JobResourceSchema>;

/** Stages of a job's teardown, in order, after COMMAND's own process group. */
export type TeardownStage = "remote" | "tunnels";

/** A callback that closes something held in this process for a job. */
export type Closer = () => Promise<void> | void;

/**
 * The pool whose watchdog looks after `r` (a job's groups and scheduler jobs there, and a relay
 * its tunnel runs there, which carries the job's marker); undefined for what lives here.
 */
export function watchedTarget(r: JobResource): string | undefined {
  if (r.kind === "remote_group" || r.kind === "scheduler_job") return r.target;
  if (r.kind === "tunnel" && r.relay && r.target && r.target !== "local") return r.target;
  return undefined;
}

/** The key that identifies one resource (to remove it again). */
export function resourceKey(r: JobResource): string {
  switch (r.kind) {
    case "remote_group":
      return `remote_group:${r.target}:${r.pgid}`;
    case "scheduler_job":
      return `scheduler_job:${r.target}:${r.scheduler}:${r.id}`;
    case "tunnel":
      return `tunnel:${r.id}`;
    case "local_group":
      return `local_group:${r.pgid}`;
  }
}

/** The tunnel owner string used for everything a job opens. */
export function jobOwner(jobId: string): string {
  return `job:${jobId}`;
}

/**
 * Where services register what they start for a job. The sidecar's jobs service implements it:
 * each resource is written to the job record at once (so a `kill` from another terminal finds it
 * even after the sidecar died) and handed to the pool's watchdog.
 */
export interface JobResources {
  /** Record a resource; throws JOB_NOT_FOUND / JOB_FINISHED for an unknown or ended job. */
  add(jobId: string, resource: JobResource): Promise<void>;
  /** Forget a resource that its owner already cleaned up itself (e.g. a block it cancelled). */
  remove(jobId: string, resource: JobResource): Promise<void>;
  resources(jobId: string): JobResource[];
  /**
   * Run `close` when the job is torn down, at `stage` (remote after COMMAND's group, tunnels after
   * remote). Returns a function that unregisters it.
   */
  onTeardown(jobId: string, stage: TeardownStage, name: string, close: Closer): () => void;
}

/**
 * A service that holds things under an owner string and can release them all: the executors
 * service (worker blocks and their tunnels) and the tunnels service. A job's teardown releases
 * owner = the job id (the Python side uses $PARSL_SIDECAR_JOB as its owner).
 */
export interface OwnerRelease {
  name: string;
  /** `remote` runs with the pools' cleanup, `tunnels` after it */
  stage: TeardownStage;
  release(owner: string): Promise<unknown>;
}
