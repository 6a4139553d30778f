/**
 * Remembers a running job's descendants by polling /proc (every 500 ms by default), so that a
 * process that later leaves the process group or is reparented to init can still be found.
 */
import { isGone, listProcs, procAlive } from "./proc.js";
import type { ProcRef } from "./record.js";
import { descendantsOf } from "./tree.js";

export class ProcessTracker {
  private readonly known = new Map<string, ProcRef>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rootPid: number,
    private readonly onChange: (refs: ProcRef[]) => void,
    private readonly intervalMs = 500,
  ) {}

  /** Look now and then every intervalMs; the first look's findings are in refs(), not reported. */
  start(): void {
    this.poll(false);
    this.timer = setInterval(() => this.poll(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  refs(): ProcRef[] {
    return [...this.known.values()];
  }

  /** One look at /proc: add new descendants (and group members), forget the dead. */
  poll(report = true): void {
    let changed = false;
    const procs = listProcs();
    const live = procs.filter((p) => !isGone(p));
    const roots = [this.rootPid, ...[...this.known.values()].map((r) => r.pid)];
    const seen = [...descendantsOf(roots, live), ...live.filter((p) => p.pgid === this.rootPid)];
    for (const p of seen) {
      const key = `${p.pid}:${p.startTime}`;
      if (!this.known.has(key)) {
        this.known.set(key, { pid: p.pid, start_time: p.startTime });
        changed = true;
      }
    }
    for (const [key, ref] of this.known) {
      if (!procAlive(ref.pid, ref.start_time)) {
        this.known.delete(key);
        changed = true;
      }
    }
    if (changed && report) this.onChange(this.refs());
  }
}
