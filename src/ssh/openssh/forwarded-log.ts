/**
 * The connections sshd forwarded to our master, read from its `-v` log: for a forward the master
 * connects itself (`-R port:host:port`), this log is the only place the sidecar sees them. Per
 * listen port: how many are open and have arrived, and, by the originator's port on the pool,
 * whether each reached its destination here (the end-to-end check of a direct forward).
 *
 *   client_request_forwarded_tcpip: listen localhost port 42017, originator 127.0.0.1 port 41406
 *   channel 3: new forwarded-tcpip [127.0.0.1] ...
 *   channel 3: connected to 127.0.0.1 port 48111   |   channel 3: connection failed: REASON
 *   channel 3: free: ...
 */

/** how many arrivals are kept to answer checks */
const ARRIVALS = 256;

export interface Arrival {
  listenPort: number;
  originatorPort: number;
  at: number;
  /** undefined until the master's connect here finished */
  outcome?: { ok: true } | { ok: false; reason: string };
  /** the sidecar's own probe, not counted as a connection */
  probe?: boolean;
  /** when its channel was freed */
  endedAt?: number;
}

export interface ForwardCounts {
  /** open now (after the master ended: open when it ended) */
  live: number;
  /** arrived since the forward was made */
  total: number;
  /** when the last few ended: a dropped connection ends its channels just before it is seen */
  ends: number[];
}

const ENDS_KEPT = 64;

export class ForwardedLog {
  private readonly counts = new Map<number, ForwardCounts>();
  private readonly arrivals: Arrival[] = [];
  /** the arrival whose channel number the next `new forwarded-tcpip` line gives */
  private pending: Arrival | undefined;
  private readonly channels = new Map<number, Arrival>();
  private readonly waiters = new Set<() => void>();

  /** start counting for a port (again from 0: a new forward on a port an old one had) */
  watch(port: number): void {
    this.counts.set(port, { live: 0, total: 0, ends: [] });
  }

  unwatch(port: number): void {
    this.counts.delete(port);
  }

  count(port: number): ForwardCounts {
    const c = this.counts.get(port);
    return c
      ? { live: c.live, total: c.total, ends: [...c.ends] }
      : { live: 0, total: 0, ends: [] };
  }

  line(line: string): void {
    let m = /client_request_forwarded_tcpip: listen \S+ port (\d+), originator \S+ port (\d+)/.exec(
      line,
    );
    if (m) {
      const a: Arrival = {
        listenPort: Number(m[1]),
        originatorPort: Number(m[2]),
        at: Date.now(),
      };
      this.pending = a;
      this.arrivals.push(a);
      if (this.arrivals.length > ARRIVALS) this.arrivals.shift();
      return;
    }
    if (this.pending && /^connect_to \S+ port \d+: failed/.test(line.replace(/^debug\d: /, ""))) {
      // no channel was made: the connect failed at once
      this.pending.outcome = { ok: false, reason: line.trim() };
      this.pending = undefined;
      this.wake();
      return;
    }
    m = /channel (\d+): new forwarded-tcpip/.exec(line);
    if (m && this.pending) {
      const a = this.pending;
      this.pending = undefined;
      this.channels.set(Number(m[1]), a);
      const c = this.counts.get(a.listenPort);
      if (c) {
        c.live++;
        c.total++;
      }
      return;
    }
    m = /channel (\d+): (connected to|connection failed: )(.*)$/.exec(line);
    if (m) {
      const a = this.channels.get(Number(m[1]));
      if (a && !a.outcome) {
        a.outcome = m[2] === "connected to" ? { ok: true } : { ok: false, reason: m[3]!.trim() };
        this.wake();
      }
      return;
    }
    m = /channel (\d+): free: /.exec(line);
    if (m) {
      const n = Number(m[1]);
      const a = this.channels.get(n);
      if (!a) return;
      this.channels.delete(n);
      const c = this.counts.get(a.listenPort);
      a.endedAt = Date.now();
      if (c && c.live > 0) {
        c.live--;
        if (!a.probe) c.ends.push(a.endedAt);
        if (c.ends.length > ENDS_KEPT) c.ends.shift();
      }
      if (!a.outcome) {
        a.outcome = { ok: false, reason: "the channel closed before it connected" };
        this.wake();
      }
    }
  }

  /** the master is gone, its channels with it (`live` stays: what the drop cut) */
  ended(): void {
    this.channels.clear();
    this.pending = undefined;
    this.wake();
  }

  /**
   * How a connection to `listenPort` that arrived at or after `since` fared: the one from
   * `originatorPort` when given, else the first to finish. Waits up to `timeoutMs` for it.
   */
  async outcome(
    listenPort: number,
    originatorPort: number | undefined,
    since: number,
    timeoutMs: number,
  ): Promise<Arrival | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.find(listenPort, originatorPort, since);
      if (found?.outcome || Date.now() >= deadline) return found;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(1, deadline - Date.now()));
        this.waiters.add(done);
      });
    }
  }

  /** `a` was the sidecar's own probe: it does not count as a connection that arrived */
  notCounted(a: Arrival): void {
    if (a.probe) return;
    a.probe = true;
    const c = this.counts.get(a.listenPort);
    if (c && c.total > 0) c.total--;
    // the probe usually ends before the check hears of it
    const i = a.endedAt === undefined ? -1 : (c?.ends.indexOf(a.endedAt) ?? -1);
    if (i >= 0) c!.ends.splice(i, 1);
  }

  private find(
    listenPort: number,
    originatorPort: number | undefined,
    since: number,
  ): Arrival | undefined {
    const mine = this.arrivals.filter(
      (a) =>
        a.listenPort === listenPort &&
        a.at >= since &&
        (originatorPort === undefined || a.originatorPort === originatorPort),
    );
    return mine.find((a) => a.outcome?.ok) ?? mine.find((a) => a.outcome) ?? mine[0];
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
