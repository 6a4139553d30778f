/**
 * The jobs service of a sidecar: runs jobs (for `parsl-sidecar run`), lists and stops them, and
 * is the JobResources registry other services record what they start for a job in.
 */
import type { EventBus } from "../events.js";
import { SidecarError } from "../errors.js";
import type { Hosts } from "../ssh/host.js";
import type { Logger } from "../util/logger.js";
import { killFromRecord, reconcile, supervisorAlive } from "./lifecycle.js";
import { isFinal, type JobRecord, JobStore } from "./record.js";
import {
  type Closer,
  type JobResource,
  type JobResources,
  type OwnerRelease,
  resourceKey,
  type TeardownStage,
} from "./resources.js";
import type { JobPreparer, RunSpec } from "./job-context.js";
import { JobRunner, type RunOutcome } from "./runner.js";
import { DEFAULT_WATCHDOG_BOUND_S } from "./watchdog-command.js";

/** A job as `jobs.list`/`jobs.get` report it: the record, and whether its supervisor is alive. */
export type JobView = JobRecord & { live: boolean };

export interface JobsServiceOptions {
  stateDir: string;
  log: Logger;
  events: EventBus;
  /** how pools are reached (SshConnections; `local` at least) */
  hosts: Hosts;
  /** seconds without a heartbeat after which a pool's watchdog cleans up (default 30) */
  watchdogBoundS?: number;
  /** services that hold things under the job id as owner, released at teardown */
  owners?: OwnerRelease[];
}

export const DEFAULT_GRACE_MS = 10_000;

export class JobsService implements JobResources {
  readonly store: JobStore;
  private readonly runners = new Map<string, JobRunner>();
  private readonly preparers: JobPreparer[] = [];

  constructor(private readonly opts: JobsServiceOptions) {
    this.store = new JobStore(opts.stateDir);
  }

  /**
   * Add a step that runs before COMMAND starts, in the order added (environments first, then
   * executors and their tunnels).
   */
  addPreparer(p: JobPreparer): void {
    this.preparers.push(p);
  }

  /** Start a job supervised by this process. */
  start(spec: RunSpec): JobRunner {
    for (const [option, value] of [
      ["executors", spec.executors],
      ["env", spec.envs?.length ? spec.envs : undefined],
    ] as const) {
      if (value !== undefined && !this.preparers.some((p) => p.handles.includes(option))) {
        throw new SidecarError(
          "INVALID_ARGUMENT",
          `\`run --${option}\` needs the ${option === "env" ? "environments" : "executors"} service, which this sidecar does not have`,
        );
      }
    }
    if (this.store.exists(spec.id)) {
      const old = this.store.read(spec.id);
      if (!isFinal(old.state) && supervisorAlive(old)) {
        throw new SidecarError(
          "INVALID_ARGUMENT",
          `Job \`${spec.id}\` is already running (pid ${old.supervisor.pid}); choose another --job name or stop it with \`parsl-sidecar kill ${spec.id}\``,
        );
      }
    }
    const runner = new JobRunner(spec, {
      store: this.store,
      log: this.opts.log,
      events: this.opts.events,
      hosts: this.opts.hosts,
      watchdogBoundS: this.opts.watchdogBoundS ?? envBound() ?? DEFAULT_WATCHDOG_BOUND_S,
      preparers: [
        ...this.preparers.filter((p) => p.handles.includes("env")),
        ...this.preparers.filter((p) => !p.handles.includes("env")),
      ],
      owners: this.opts.owners ?? [],
    });
    this.runners.set(spec.id, runner);
    void runner.done.finally(() => this.runners.delete(spec.id));
    return runner;
  }

  runner(id: string): JobRunner | undefined {
    return this.runners.get(id);
  }

  /** One job; a running job whose supervisor died is marked lost and cleaned up. */
  async get(id: string): Promise<JobView> {
    const rec = this.runners.has(id)
      ? this.store.read(id)
      : await reconcile(this.store, this.store.read(id), this.opts.hosts);
    return { ...rec, live: !isFinal(rec.state) && supervisorAlive(rec) };
  }

  async list(): Promise<JobView[]> {
    const out: JobView[] = [];
    for (const rec of this.store.list()) {
      const now = this.runners.has(rec.id)
        ? rec
        : await reconcile(this.store, rec, this.opts.hosts);
      out.push({ ...now, live: !isFinal(now.state) && supervisorAlive(now) });
    }
    return out;
  }

  /** Stop a job: through its runner if this process supervises it, else from its record. */
  async kill(
    id: string,
    graceMs = DEFAULT_GRACE_MS,
  ): Promise<{ record: JobRecord; exitCode: number | null }> {
    const runner = this.runners.get(id);
    if (runner) {
      const out: RunOutcome = await runner.kill(graceMs);
      return { record: out.record, exitCode: out.exitCode };
    }
    const rec = this.store.read(id);
    if (isFinal(rec.state)) throw finishedError(rec);
    const done = await killFromRecord(this.store, rec, this.opts.hosts, graceMs);
    return { record: done, exitCode: done.exit_code };
  }

  async add(jobId: string, resource: JobResource): Promise<void> {
    const runner = this.runners.get(jobId);
    if (runner) return runner.addResource(resource);
    // a job supervised elsewhere (run --connection): the record is enough for its cleanup
    const rec = this.store.read(jobId);
    if (isFinal(rec.state)) throw finishedError(rec);
    this.store.update(jobId, (r) => {
      if (!r.resources.some((x) => resourceKey(x) === resourceKey(resource)))
        r.resources.push(resource);
      if ("target" in resource && resource.target && !r.pools.includes(resource.target))
        r.pools.push(resource.target);
    });
  }

  /**
   * Resolves once the job's watchdog runs on `target` (started if need be), when this sidecar
   * supervises the job; what is started there for the job afterwards cannot outlive the job.
   */
  async watchPool(jobId: string, target: string): Promise<void> {
    await this.runners.get(jobId)?.watchPool(target);
  }

  async remove(jobId: string, resource: JobResource): Promise<void> {
    const runner = this.runners.get(jobId);
    if (runner) return runner.removeResource(resource);
    this.store.update(
      jobId,
      (r) => (r.resources = r.resources.filter((x) => resourceKey(x) !== resourceKey(resource))),
    );
  }

  resources(jobId: string): JobResource[] {
    return this.store.read(jobId).resources;
  }

  onTeardown(jobId: string, stage: TeardownStage, name: string, close: Closer): () => void {
    const runner = this.runners.get(jobId);
    if (!runner)
      throw new SidecarError(
        "JOB_NOT_FOUND",
        `Job \`${jobId}\` is not supervised by this sidecar, so it cannot run a close callback for it`,
      );
    return runner.onTeardown(stage, name, close);
  }

  status(): Record<string, unknown> {
    return { running: this.runners.size };
  }

  /** The sidecar is closing: stop the jobs it still supervises. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.runners.values()].map((r) =>
        r.kill(2000, "killed", "the sidecar shut down").catch(() => undefined),
      ),
    );
  }
}

export function finishedError(rec: JobRecord): SidecarError {
  return new SidecarError(
    "JOB_FINISHED",
    `Job \`${rec.id}\` already ended (${rec.state}${rec.exit_code === null ? "" : `, exit code ${rec.exit_code}`}${rec.ended_at ? ` at ${rec.ended_at}` : ""}); nothing to stop`,
    {
      data: { job: rec.id, state: rec.state, exit_code: rec.exit_code },
    },
  );
}

function envBound(): number | undefined {
  const v = Number(process.env.PARSL_SIDECAR_WATCHDOG_S);
  return Number.isFinite(v) && v > 0 ? v : undefined;
}
