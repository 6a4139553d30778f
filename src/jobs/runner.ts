/**
 * One job supervised by this process: its record, the preparers (environments, executors and
 * tunnels), COMMAND in its own process group, the /proc tracker, the timeout, the pools'
 * watchdogs, and the teardown in order: COMMAND's processes, then remote workers and scheduler
 * jobs, then tunnels and relays.
 */
import { withCause } from "../rpc/call-cause.js";
import { hostname } from "node:os";
import { EXIT } from "../exit-codes.js";
import type { EventBus } from "../events.js";
import type { HostLease, Hosts } from "../ssh/host.js";
import { formatDuration } from "../util/duration.js";
import type { Logger } from "../util/logger.js";
import type { JobContext, JobPreparer, RunSpec } from "./job-context.js";
import { killLocalJob, type LocalKillResult } from "./local-kill.js";
import { cleanupTargets, PoolWatchdog, runToken } from "./pool-watchdog.js";
import { JOB_ENV, readProc, selfStartTime } from "./proc.js";
import type { JobRecord, JobState, JobStore } from "./record.js";
import {
  type Closer,
  type JobResource,
  type OwnerRelease,
  resourceKey,
  type TeardownStage,
  watchedTarget,
} from "./resources.js";
import { signalExitCode, supervise, type SuperviseResult } from "./supervise.js";
import { ProcessTracker } from "./tracker.js";

export interface RunnerDeps {
  store: JobStore;
  log: Logger;
  events: EventBus;
  hosts: Hosts;
  watchdogBoundS: number;
  preparers: JobPreparer[];
  owners: OwnerRelease[];
}

export interface RunOutcome {
  record: JobRecord;
  exitCode: number;
  /** why COMMAND could not be started (or the job not prepared) */
  error?: string;
}

export class JobRunner {
  readonly done: Promise<RunOutcome>;
  private pgid = 0;
  private tracker: ProcessTracker | undefined;
  private ending: { state: JobState; reason: string } | undefined;
  private localKill: Promise<LocalKillResult> | undefined;
  private readonly watchdogs = new Map<string, Promise<PoolWatchdog | undefined>>();
  private readonly leases: HostLease[] = [];
  private readonly closers: Array<{ stage: TeardownStage; name: string; close: Closer }> = [];
  private readonly abort = new AbortController();
  private tearingDown = false;

  constructor(
    readonly spec: RunSpec,
    private readonly deps: RunnerDeps,
  ) {
    const now = new Date().toISOString();
    deps.store.write({
      version: 1,
      id: spec.id,
      command: spec.command,
      cwd: spec.cwd,
      uid: process.getuid?.() ?? 0,
      host: hostname(),
      state: "starting",
      created_at: now,
      started_at: now,
      ended_at: null,
      exit_code: null,
      signal: null,
      reason: null,
      timeout_ms: spec.timeoutMs ?? null,
      supervisor: { pid: process.pid, start_time: readProc("self")?.startTime ?? 0 },
      sidecar: spec.sidecar,
      pgid: null,
      tracked: [],
      pools: [],
      resources: [],
      kill_requested: null,
      cleanup: null,
    });
    this.emit("starting");
    this.done = this.run();
  }

  get id(): string {
    return this.spec.id;
  }

  record(): JobRecord {
    return this.deps.store.read(this.id);
  }

  /** Stop the job (from `kill`, a timeout or a signal) and wait for the whole teardown. */
  kill(
    graceMs: number,
    state: JobState = "killed",
    reason = "stopped by parsl-sidecar kill",
  ): Promise<RunOutcome> {
    this.ending ??= { state, reason };
    this.abort.abort();
    if (state === "killed")
      this.deps.store.update(
        this.id,
        (r) =>
          (r.kill_requested ??= {
            at: new Date().toISOString(),
            by_pid: process.pid,
            grace_ms: graceMs,
          }),
      );
    this.localKill ??= killLocalJob(this.localSpec(), graceMs);
    return this.done;
  }

  async addResource(r: JobResource): Promise<void> {
    this.deps.store.update(this.id, (rec) => {
      if (!rec.resources.some((x) => resourceKey(x) === resourceKey(r))) rec.resources.push(r);
      if ("target" in r && r.target && !rec.pools.includes(r.target)) rec.pools.push(r.target);
    });
    const target = watchedTarget(r);
    // a relay needs only the watchdog to exist there (it carries the job's marker); groups and scheduler jobs are handed to it
    if (target !== undefined) (await this.watchdog(target))?.add(r);
  }

  /** See JobsService.watchPool (a failed start is logged and retried, never thrown). */
  async watchPool(target: string): Promise<void> {
    if (target !== "local" && !this.tearingDown) await this.watchdog(target);
  }

  async removeResource(r: JobResource): Promise<void> {
    this.deps.store.update(this.id, (rec) => {
      rec.resources = rec.resources.filter((x) => resourceKey(x) !== resourceKey(r));
    });
    if (r.kind === "remote_group" || r.kind === "scheduler_job")
      (await this.watchdogs.get(r.target))?.remove(r);
  }

  onTeardown(stage: TeardownStage, name: string, close: Closer): () => void {
    const entry = { stage, name, close };
    this.closers.push(entry);
    return () => {
      const i = this.closers.indexOf(entry);
      if (i >= 0) this.closers.splice(i, 1);
    };
  }

  private watchdog(target: string): Promise<PoolWatchdog | undefined> {
    let wd = this.watchdogs.get(target);
    if (!wd) {
      wd = this.startWatchdog(target);
      this.watchdogs.set(target, wd);
    }
    return wd;
  }

  /**
   * Start a pool's watchdog and hand it what the record holds for that pool. One lost with its
   * SSH connection is started again (it takes over the lost one's state on the pool) until the
   * teardown; the old one exits by itself.
   */
  private async startWatchdog(target: string): Promise<PoolWatchdog | undefined> {
    const again = (): void => {
      if (this.tearingDown) return;
      setTimeout(() => {
        if (!this.tearingDown) this.watchdogs.set(target, this.startWatchdog(target));
      }, 1000).unref();
    };
    let lease: HostLease | undefined;
    // a lost watchdog's lease goes with it: one lease per running watchdog, however many drops
    const drop = (): void => {
      const i = lease ? this.leases.indexOf(lease) : -1;
      if (i >= 0) this.leases.splice(i, 1)[0]!.release();
    };
    try {
      lease = await this.deps.hosts.acquire(target, `job:${this.id}`);
      this.leases.push(lease);
      const rec = this.record();
      const wd = await PoolWatchdog.start(lease, this.id, {
        run: runToken(rec.supervisor),
        boundS: this.deps.watchdogBoundS,
        graceMs: this.spec.graceMs,
      });
      for (const r of rec.resources)
        if ((r.kind === "remote_group" || r.kind === "scheduler_job") && r.target === target)
          wd.add(r);
      void wd.ended$.then(() => {
        if (wd.endedOnPurpose || this.tearingDown) return;
        this.deps.log.warn(
          { job: this.id, target },
          "the pool's watchdog was lost (its SSH connection dropped?); starting another",
        );
        drop();
        again();
      });
      return wd;
    } catch (err) {
      this.deps.log.warn(
        { job: this.id, target, err: (err as Error).message },
        "cannot start the pool's watchdog yet; retrying",
      );
      drop();
      again();
      return undefined;
    }
  }

  private localSpec(): Parameters<typeof killLocalJob>[0] {
    const rec = this.record();
    const groups = rec.resources.flatMap((r) => (r.kind === "local_group" ? [r.pgid] : []));
    return {
      jobId: this.id,
      pgids: this.pgid ? [this.pgid, ...groups] : groups,
      known: this.tracker?.refs() ?? rec.tracked,
      exclude: [process.pid],
      notBefore: selfStartTime(),
    };
  }

  private async prepare(): Promise<{ env: NodeJS.ProcessEnv; command: string[]; error?: string }> {
    let env: NodeJS.ProcessEnv = { ...this.spec.env };
    let command = [...this.spec.command];
    for (const p of this.deps.preparers) {
      if (this.ending) break;
      const ctx: JobContext = {
        id: this.id,
        cwd: this.spec.cwd,
        executors: this.spec.executors,
        envs: this.spec.envs ?? [],
        env: { ...env },
        command: [...command],
        addResource: (r) => this.addResource(r),
        onTeardown: (stage, name, close) => this.onTeardown(stage, name, close),
        signal: this.abort.signal,
        log: this.deps.log,
      };
      try {
        // a server's question while preparing (a code for a pool) is the job's to answer
        const out = await withCause({ job: this.id }, () => p.prepare(ctx));
        if (out?.env) env = { ...env, ...out.env };
        if (out?.command?.length) command = out.command;
      } catch (err) {
        return { env, command, error: `${p.name}: ${(err as Error).message}` };
      }
    }
    return { env, command };
  }

  private supervise(command: string[], env: NodeJS.ProcessEnv): Promise<SuperviseResult> {
    return supervise(command, {
      env: { ...env, [JOB_ENV]: this.id },
      cwd: this.spec.cwd,
      onStart: (pid) => {
        this.pgid = pid;
        const tracker = new ProcessTracker(pid, (refs) =>
          this.deps.store.update(this.id, (r) => (r.tracked = refs)),
        );
        this.tracker = tracker;
        tracker.start();
        this.deps.store.update(this.id, (r) => {
          r.pgid = pid;
          r.tracked = tracker.refs();
        });
      },
      onSignal: (sig) => {
        // the signal went to COMMAND's group: it gets the grace period to end by itself, a second signal ends it now
        if (this.ending) {
          this.localKill = killLocalJob(this.localSpec(), 0);
          return;
        }
        this.ending = { state: "killed", reason: `parsl-sidecar run received ${sig}` };
        setTimeout(
          () => (this.localKill ??= killLocalJob(this.localSpec(), 0)),
          this.spec.graceMs,
        ).unref();
      },
    });
  }

  private async run(): Promise<RunOutcome> {
    const { spec } = this;
    const timer = spec.timeoutMs
      ? setTimeout(
          () =>
            void this.kill(
              spec.graceMs,
              "timed-out",
              `ran longer than --timeout ${formatDuration(spec.timeoutMs!)}`,
            ),
          spec.timeoutMs,
        )
      : undefined;
    const prep = await this.prepare();
    let res: SuperviseResult;
    if (prep.error) {
      this.ending ??= { state: "failed", reason: `preparing the job failed: ${prep.error}` };
      res = { exitCode: EXIT.ERROR, signal: undefined, error: prep.error, durationMs: 0 };
    } else if (this.ending) {
      res = {
        exitCode: signalExitCode("SIGTERM"),
        signal: "SIGTERM",
        error: undefined,
        durationMs: 0,
      };
    } else {
      this.deps.store.update(this.id, (r) => (r.state = "running"));
      this.emit("running");
      res = await this.supervise(prep.command, prep.env);
    }
    if (timer) clearTimeout(timer);
    this.tracker?.stop();
    const cleanup = await this.teardown();
    let exitCode = res.exitCode;
    const rec = this.deps.store.update(this.id, (r) => {
      if (r.kill_requested && !this.ending)
        this.ending = { state: "killed", reason: "stopped by parsl-sidecar kill" };
      const state: JobState = this.ending?.state ?? (res.exitCode === 0 ? "succeeded" : "failed");
      if (state === "timed-out") exitCode = EXIT.TIMEOUT;
      Object.assign(r, {
        state,
        ended_at: new Date().toISOString(),
        exit_code: exitCode,
        signal: res.signal ?? null,
        cleanup,
      });
      r.reason =
        this.ending?.reason ??
        res.error ??
        (res.signal
          ? `COMMAND was killed by ${res.signal}`
          : `COMMAND exited with ${res.exitCode}`);
    });
    this.emit(rec.state, { exit_code: exitCode });
    return { record: rec, exitCode, ...(res.error ? { error: res.error } : {}) };
  }

  /** After COMMAND ended: its leftovers, then the pools, then tunnels; never throws. */
  private async teardown(): Promise<NonNullable<JobRecord["cleanup"]>> {
    const errors: string[] = [];
    this.tearingDown = true;
    const first = await this.localKill?.catch(() => undefined);
    const local = await killLocalJob(this.localSpec(), this.spec.graceMs);
    local.signalled += first?.signalled ?? 0;
    const rec = this.record();
    const live = new Map<string, PoolWatchdog>();
    for (const [target, wd] of this.watchdogs) {
      const w = await wd;
      if (w?.alive) live.set(target, w);
    }
    const release = async (stage: TeardownStage): Promise<void> => {
      const closers = this.closers.filter((x) => x.stage === stage).reverse();
      const owners = this.deps.owners.filter((o) => o.stage === stage);
      await Promise.all([
        ...closers.map(async (c) => {
          await Promise.resolve()
            .then(() => c.close())
            .catch((err: unknown) => errors.push(`${c.name}: ${(err as Error).message}`));
        }),
        ...owners.map(async (o) => {
          await o
            .release(this.id)
            .catch((err: unknown) => errors.push(`${o.name}: ${(err as Error).message}`));
        }),
      ]);
    };
    // the pools: watchdogs (groups, marked daemons, one scancel/qdel) and the services' own release
    const [remote] = await Promise.all([
      cleanupTargets(rec, this.deps.hosts, this.spec.graceMs, live),
      release("remote"),
    ]);
    for (const r of remote) if (r.error) errors.push(`${r.target}: ${r.error}`);
    await release("tunnels");
    for (const l of this.leases) l.release();
    return {
      local_signalled: local.signalled,
      local_left: local.left,
      remote: remote.map((r) => ({ ...r })),
      errors,
    };
  }

  private emit(state: string, extra: Record<string, unknown> = {}): void {
    this.deps.events.emit("job.state", { job: this.id, state, ...extra });
  }
}
