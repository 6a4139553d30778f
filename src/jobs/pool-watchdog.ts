/**
 * The sidecar's side of a pool's watchdog: starts the script on the pool, tells it the job's
 * process groups and scheduler jobs as they are registered, sends a heartbeat every HEARTBEAT_S,
 * and on teardown asks it to clean up (one batched scancel/qdel) and waits for its report.
 */
import { createInterface } from "node:readline";
import type { Host, HostProcess, Hosts } from "../ssh/host.js";
import { within } from "../util/timeout.js";
import { type JobResource, watchedTarget } from "./resources.js";
import { HEARTBEAT_S, watchdogCommand } from "./watchdog-command.js";

/** What a watchdog reports after cleaning up: `done groups=1 processes=3 slurm=2 pbspro=0 left=0`. */
export interface RemoteCleanup {
  target: string;
  groups: number;
  processes: number;
  slurm: number;
  pbspro: number;
  left: number;
  /** What would not die, as `pid:command:state:group` (a few at most); absent when none. */
  survivors?: string[];
  error?: string;
}

export function parseDone(target: string, line: string | undefined): RemoteCleanup {
  const out: RemoteCleanup = { target, groups: 0, processes: 0, slurm: 0, pbspro: 0, left: 0 };
  if (!line?.startsWith("done "))
    return { ...out, error: `the watchdog did not report (${line ?? "no output"})` };
  for (const kv of line.slice(5).split(" ")) {
    const [k, v] = kv.split("=");
    if (k === "survivors" && v) out.survivors = v.split(",");
    else if (k && k in out && k !== "target")
      (out as unknown as Record<string, number>)[k] = Number(v);
  }
  return out;
}

/** Lines that tell a watchdog about a resource (or that it is gone). */
export function resourceLine(r: JobResource, removed = false): string | undefined {
  if (r.kind === "remote_group")
    return `${removed ? "unpg" : "pg"} ${r.pgid}${r.mark ? ` ${r.mark}` : ""}`;
  if (r.kind === "scheduler_job") return `${removed ? "unsj" : "sj"} ${r.scheduler} ${r.id}`;
  return undefined;
}

export class PoolWatchdog {
  private proc: HostProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly lines: string[] = [];
  private waiters: Array<(line: string | undefined) => void> = [];
  private ended = false;
  private intended = false;
  private closed = false;
  private resolveEnded!: () => void;
  /** resolves when the watchdog's process or channel ended */
  readonly ended$: Promise<void> = new Promise((r) => (this.resolveEnded = r));

  private constructor(
    readonly host: Host,
    readonly jobId: string,
  ) {}

  /** Start the watchdog on `host` and wait until it is ready. */
  static async start(
    host: Host,
    jobId: string,
    opts: {
      run: string;
      boundS: number;
      graceMs: number;
      heartbeatS?: number;
      env?: Record<string, string>;
    },
  ): Promise<PoolWatchdog> {
    const wd = new PoolWatchdog(host, jobId);
    wd.proc = await host.spawn(
      watchdogCommand(jobId, opts.run, opts.boundS, opts.graceMs, host.target),
      opts.env ? { env: opts.env } : {},
    );
    wd.proc.stdin.on("error", () => undefined);
    wd.proc.stderr.resume();
    const rl = createInterface({ input: wd.proc.stdout });
    rl.on("line", (l) => wd.push(l));
    rl.on("close", () => wd.close());
    void wd.proc.exited.then(
      () => wd.close(),
      () => wd.close(),
    );
    const ready = await wd.next(30_000);
    if (!ready?.startsWith("ready ")) {
      await wd.proc.kill("SIGKILL").catch(() => undefined);
      throw new Error(`the watchdog on ${host.target} did not start (${ready ?? "no output"})`);
    }
    // several heartbeats per bound, so that one late timer does not look like a dead sidecar
    const everyS = opts.heartbeatS ?? Math.min(HEARTBEAT_S, opts.boundS / 4);
    wd.timer = setInterval(() => wd.send("hb"), everyS * 1000);
    wd.timer.unref();
    return wd;
  }

  get alive(): boolean {
    return !this.ended;
  }

  /** Whether it ended because the sidecar told it to (kill, stop), not because it was lost. */
  get endedOnPurpose(): boolean {
    return this.intended;
  }

  add(r: JobResource): void {
    const line = resourceLine(r);
    if (line) this.send(line);
  }

  remove(r: JobResource): void {
    const line = resourceLine(r, true);
    if (line) this.send(line);
  }

  /** Clean up the job on this pool now; resolves with the watchdog's report. */
  async kill(graceMs: number): Promise<RemoteCleanup> {
    this.stopHeartbeat();
    this.intended = true;
    if (this.ended)
      return {
        ...parseDone(this.host.target, undefined),
        error: "the watchdog had already exited",
      };
    this.send(`kill ${Math.round(graceMs)}`);
    const line = await this.next(graceMs + 30_000);
    this.ended = true;
    return parseDone(this.host.target, line);
  }

  /** The job ended and its resources are gone: let the watchdog exit without cleaning. */
  async stop(): Promise<void> {
    this.stopHeartbeat();
    this.intended = true;
    if (this.ended) return;
    this.send("stop");
    await this.next(10_000);
  }

  private send(line: string): void {
    if (this.ended || !this.proc) return;
    this.proc.stdin.write(`${line}\n`);
  }

  private stopHeartbeat(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private push(line: string): void {
    const w = this.waiters.shift();
    if (w) w(line);
    else this.lines.push(line);
  }

  private close(): void {
    if (this.closed) return;
    this.ended = true;
    this.closed = true;
    this.stopHeartbeat();
    for (const w of this.waiters.splice(0)) w(undefined);
    this.resolveEnded();
  }

  private async next(timeoutMs: number): Promise<string | undefined> {
    const l = this.lines.shift();
    if (l !== undefined) return l;
    if (this.ended) return undefined;
    let done: (line: string | undefined) => void = () => {};
    const line = new Promise<string | undefined>((resolve) => {
      done = resolve;
      this.waiters.push(done);
    });
    try {
      return await within(line, timeoutMs, undefined);
    } finally {
      // once late, the waiter goes: the next line is kept for the next call
      this.waiters = this.waiters.filter((w) => w !== done);
    }
  }
}

/**
 * Clean up a job on a pool without a running watchdog (the sidecar that started it is gone):
 * the same script, fed the resources from the record, run once over exec.
 */
export async function cleanupOnHost(
  host: Host,
  jobId: string,
  run: string,
  resources: JobResource[],
  graceMs: number,
): Promise<RemoteCleanup> {
  const lines = [
    ...resources.map((r) => resourceLine(r)).filter((l): l is string => l !== undefined),
    `kill ${Math.round(graceMs)}`,
  ];
  try {
    const res = await host.exec(watchdogCommand(jobId, run, 3600, graceMs, host.target), {
      stdin: `${lines.join("\n")}\n`,
      timeoutMs: graceMs + 60_000,
    });
    const done = res.stdout.split("\n").find((l) => l.startsWith("done "));
    return parseDone(host.target, done ?? (res.stderr.trim() || `exit ${res.exitCode}`));
  } catch (err) {
    return { ...parseDone(host.target, undefined), error: (err as Error).message };
  }
}

/**
 * Clean up every pool a job used, in parallel: through its live watchdog where there is one,
 * else over a plain exec from the record.
 */
export async function cleanupTargets(
  rec: { id: string; resources: JobResource[]; supervisor: { pid: number; start_time: number } },
  hosts: Hosts,
  graceMs: number,
  watchdogs: Map<string, PoolWatchdog> = new Map(),
): Promise<RemoteCleanup[]> {
  const targets = new Set(
    rec.resources.map(watchedTarget).filter((t): t is string => t !== undefined),
  );
  for (const t of watchdogs.keys()) targets.add(t);
  return Promise.all(
    [...targets].map(async (target) => {
      const wd = watchdogs.get(target);
      if (wd?.alive) return wd.kill(graceMs);
      try {
        const lease = await hosts.acquire(target, `job:${rec.id}`);
        try {
          return await cleanupOnHost(
            lease,
            rec.id,
            runToken(rec.supervisor),
            rec.resources.filter((r) => "target" in r && r.target === target),
            graceMs,
          );
        } finally {
          lease.release();
        }
      } catch (err) {
        return {
          ...parseDone(target, undefined),
          left: -1,
          error: `not reachable: ${(err as Error).message}`,
        };
      }
    }),
  );
}

/** Names one run of a job (its supervisor's pid and start time) for the watchdog's state on a pool. */
export function runToken(supervisor: { pid: number; start_time: number }): string {
  return `${supervisor.pid}-${supervisor.start_time}`;
}
