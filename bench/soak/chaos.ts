/**
 * The soak's chaos: what it does to the bed while a workflow runs, and when.
 * - drop: SIGKILL the per-connection sshd processes of a pool's sshd (the listener stays; what
 *   the sessions started lives on), as a failed network ends connections;
 * - restart: stop one pool's sshd (its listener and every connection's sshd process; what the
 *   sessions started lives on, as with `systemctl restart ssh` and the connections lost) and
 *   start it again on the same port with the same host key;
 * - s3: SIGSTOP moto for 10 s, then SIGCONT (moto keeps objects in memory only: a real stop
 *   would lose them; stopped, it accepts connections and answers nothing, as a hung server);
 * - workers: SIGTERM every process_worker_pool of one block (Parsl must replace the block and
 *   retry its tasks).
 * Full schedule: a drop every `period` s from the moment the workflow has loaded, and each
 * one-time event once when that share of the tasks is done (s3 20%, workers 35%, restart 55%).
 * With `limit` K: the first K of drop, workers, restart, s3, at (j+1)/(K+1) of the tasks.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { Bed, Pool } from "./bed.js";

export type ChaosKind = "drop" | "restart" | "s3" | "workers";

export interface ChaosEvent {
  /** seconds since the workflow loaded */
  t: number;
  kind: ChaosKind;
  pool?: string;
  /** what was hit: processes killed or signalled */
  n?: number;
  /** seconds the event took (restart, s3) */
  s?: number;
  error?: string;
}

export interface Progress {
  phase: string;
  completed: number;
  failed: number;
  /** seconds since the workflow started */
  t?: number;
}

/** A small seeded generator, so that a run's choices can be repeated. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/**
 * PIDs of a block's workers in a namespace: each process_worker_pool manager (a Python process
 * running that module, not the shells whose scripts name it) and its worker processes (its
 * descendants), as a scheduler ending the block would reach them.
 */
export function workersIn(ns: string): number[] {
  let target: string;
  try {
    target = namespaceId(`/run/netns/${ns}`);
  } catch {
    return [];
  }
  const parent = new Map<number, number>();
  const managers: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (namespaceId(`/proc/${name}/ns/net`) !== target) continue;
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (/python/.test(argv[0] ?? "") && argv.some((a) => a.includes("process_worker_pool")))
        managers.push(Number(name));
    } catch {
      /* gone */
    }
  }
  const out = new Set(managers);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (out.has(ppid) && !out.has(pid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out];
}

/** The namespace identity (dev:inode) of a namespace file (/run/netns/NS, /proc/PID/ns/net). */
export function namespaceId(path: string): string {
  const st = statSync(path);
  return `${st.dev}:${st.ino}`;
}

export class Chaos {
  readonly events: ChaosEvent[] = [];
  private stopped = false;
  private t0 = 0;
  private readonly pending: Array<{ at: number; kind: ChaosKind }>;
  private readonly random: () => number;
  private loop: Promise<void> | undefined;
  private readonly side: Array<Promise<void>> = [];

  constructor(
    private readonly bed: Bed,
    private readonly o: {
      tasks: number;
      period: number;
      limit?: number;
      seed: number;
      log: (s: string) => void;
    },
  ) {
    this.random = rng(o.seed);
    const order: ChaosKind[] = ["drop", "workers", "restart", "s3"];
    if (o.limit !== undefined) {
      const k = o.limit;
      this.pending = Array.from({ length: k }, (_, j) => ({
        at: ((j + 1) / (k + 1)) * o.tasks,
        kind: order[j % order.length]!,
      }));
    } else {
      this.pending = [
        { at: 0.2 * o.tasks, kind: "s3" },
        { at: 0.35 * o.tasks, kind: "workers" },
        { at: 0.55 * o.tasks, kind: "restart" },
      ];
    }
  }

  /** Runs until stop(); `progress` reads the workflow's progress file (undefined before). */
  start(progress: () => Progress | undefined): void {
    this.loop = (async () => {
      while (!this.stopped) {
        const p = progress();
        if (p && p.phase !== "starting") break;
        await sleep(200);
      }
      this.t0 = performance.now();
      let nextDrop = this.o.limit === undefined ? this.o.period : Number.POSITIVE_INFINITY;
      while (!this.stopped) {
        const p = progress();
        if (!p || p.phase === "done" || p.phase === "settled") break;
        const done = p.completed + p.failed;
        const due = this.pending.findIndex((e) => done >= e.at);
        if (due >= 0) {
          const [e] = this.pending.splice(due, 1);
          // S3's 10 s pause runs beside the rest of the schedule
          if (e!.kind === "s3") this.side.push(this.fire("s3"));
          else await this.fire(e!.kind);
        } else if (this.elapsed() >= nextDrop) {
          nextDrop += this.o.period;
          await this.fire("drop");
        }
        await sleep(250);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    await Promise.all(this.side);
  }

  private elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  private pick(): Pool {
    const pools = this.bed.pools;
    return pools[Math.floor(this.random() * pools.length)]!;
  }

  private async fire(kind: ChaosKind): Promise<void> {
    const t = Math.round(this.elapsed() * 10) / 10;
    const e: ChaosEvent = { t, kind };
    const t1 = performance.now();
    try {
      if (kind === "drop") {
        const p = this.pick();
        e.pool = p.label;
        e.n = await p.sshd.dropConnections();
      } else if (kind === "restart") {
        const p = this.pick();
        e.pool = p.label;
        await p.sshd.restartListener();
      } else if (kind === "s3") {
        process.kill(this.bed.s3.pid, "SIGSTOP");
        try {
          await sleep(10_000);
        } finally {
          process.kill(this.bed.s3.pid, "SIGCONT");
        }
      } else {
        const p = this.pick();
        e.pool = p.label;
        const pids = p.namespaces.flatMap(workersIn);
        for (const pid of pids) {
          try {
            process.kill(pid, "SIGTERM");
          } catch {
            /* gone */
          }
        }
        e.n = pids.length;
      }
    } catch (err) {
      e.error = err instanceof Error ? err.message : String(err);
    }
    if (kind === "restart" || kind === "s3") e.s = Math.round((performance.now() - t1) / 100) / 10;
    this.events.push(e);
    this.o.log(`chaos ${JSON.stringify(e)}`);
  }
}
