/** State, events and the SSH lease shared by reverse and local tunnels. */
import type { Duplex } from "node:stream";
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import type { Hosts } from "../ssh/host.js";
import { isSshLease, type SshLease } from "../ssh/connections.js";
import type { Logger } from "../util/logger.js";
import { splice, type Splice, type SpliceEnd } from "./splice.js";
import type { BindMode, CheckResult, TunnelKind, TunnelRecord, TunnelState } from "./types.js";

/** Connections that ended this long before the SSH connection was seen down were cut by the drop. */
const CUT_WINDOW_MS = 1000;

export interface TunnelDeps {
  hosts: Hosts;
  events?: EventBus;
  log?: Logger;
  /** how long a reconnect may take before the tunnel is marked failed @default 0 (never) */
  waitReadyMs?: number;
  /** durable tunnels: how long a cut connection waits to resume (s, default 120) and the relay's ping interval (s, default 2) */
  durable?: { resumeS?: number; pingS?: number };
  /**
   * Called before a tunnel of this owner starts a relay on `target`; resolves with the relay's
   * environment. The composition root marks a job's relays with PARSL_SIDECAR_JOB and first makes
   * sure the job's watchdog runs on that pool, so the watchdog ends them with the job (its
   * teardown, a dead sidecar, `kill` from the record), as it ends the job's workers, and no relay
   * of a job ever runs there without one.
   */
  relayEnv?: (owner: string, target: string) => Promise<Record<string, string>>;
}

export interface TunnelSpec {
  id: string;
  kind: TunnelKind;
  target: string;
  owner: string;
  label: string | null;
  local_host: string;
  local_port: number;
  remote_host: string;
  remote_port: number;
  bind: BindMode;
  /** reverse: carry connections through a relay that keeps them across dropped SSH connections */
  durable: boolean;
}

export abstract class TunnelBase {
  protected lease: SshLease | undefined;
  protected readonly rec: TunnelRecord;
  protected closing = false;
  /** the connections spliced through the tunnel now */
  protected readonly live = new Set<Splice>();
  /** how connections ended lately: a drop ends its channels just before it is seen */
  private ends: SpliceEnd[] = [];
  private readonly unhook: Array<() => void> = [];

  constructor(
    spec: TunnelSpec,
    protected readonly deps: TunnelDeps,
  ) {
    this.rec = {
      ...spec,
      state: "opening",
      reach: spec.kind === "local" ? "local" : "loopback",
      dial_host: spec.kind === "local" ? spec.local_host : "127.0.0.1",
      dial_port: spec.kind === "local" ? spec.local_port : spec.remote_port,
      dial_hosts: [],
      relay: null,
      bytes_in: 0,
      bytes_out: 0,
      connections: 0,
      total_connections: 0,
      cut_connections: 0,
      cut_in_flight: 0,
      direct: false,
      resumed_connections: 0,
      reconnects: 0,
      port_changes: [],
      last_check: null,
      error: null,
      created_at: Date.now(),
    };
  }

  get id(): string {
    return this.rec.id;
  }

  get owner(): string {
    return this.rec.owner;
  }

  record(): TunnelRecord {
    return {
      ...this.rec,
      dial_hosts: [...this.rec.dial_hosts],
      port_changes: [...this.rec.port_changes],
      relay: this.rec.relay ? { ...this.rec.relay } : null,
    };
  }

  protected emit(extra: Record<string, unknown> = {}): void {
    const r = this.rec;
    const data = {
      id: r.id,
      kind: r.kind,
      target: r.target,
      owner: r.owner,
      state: r.state,
      reach: r.reach,
      local_port: r.local_port,
      remote_port: r.remote_port,
      dial_host: r.dial_host,
      dial_port: r.dial_port,
      reconnects: r.reconnects,
      error: r.error,
      ...extra,
    };
    this.deps.events?.emit("tunnel.state", data);
    this.deps.log?.info(data, `tunnel ${r.id}: ${r.state}`);
  }

  /** Splice a connection here (`inner`) with its SSH channel (`outer`), counted and tracked. */
  protected join(inner: Duplex, outer: Duplex): void {
    const s = splice(inner, outer, this.rec, (end) => {
      this.live.delete(s);
      const keepFrom = end.at - CUT_WINDOW_MS;
      this.ends = this.ends.filter((e) => e.at >= keepFrom);
      this.ends.push(end);
    });
    this.live.add(s);
  }

  /**
   * The SSH connection dropped: the connections through an ordinary tunnel were cut with it.
   * Those that had data in flight lost it (a task or a result, for Parsl's workers:
   * docs/executors.md, "A dropped connection in the middle of a workflow"); the user hears
   * which, as it is the likely cause of work that never comes back. A durable tunnel's
   * connections wait to resume instead.
   */
  private noteCut(): void {
    const since = Date.now() - CUT_WINDOW_MS;
    const ended = this.ends.filter((e) => e.at >= since);
    this.ends = [];
    if (this.rec.durable) {
      // the relay keeps the connections open on the pool, and each resumes on the next link
      if (this.live.size > 0)
        this.deps.log?.info(
          { id: this.rec.id, held: this.live.size },
          `tunnel ${this.rec.id}: the connection to ${this.rec.target} dropped; ${this.live.size} connection(s) through the durable relay wait to resume`,
        );
      return;
    }
    const still = [...this.live];
    const direct = this.directCut(since);
    const cut = ended.length + still.length + direct;
    if (cut === 0) return;
    const inFlight =
      ended.filter((e) => e.inFlight).length + still.filter((s) => s.inFlight()).length;
    this.rec.cut_connections += cut;
    this.rec.cut_in_flight += inFlight;
    const r = this.rec;
    const data = { id: r.id, target: r.target, owner: r.owner, cut, in_flight: inFlight };
    if (direct > 0) {
      this.deps.log?.warn(
        { ...data, direct },
        `tunnel ${r.id}: the dropped connection to ${r.target} cut ${cut} connection(s) through it; the SSH master carried them, so whether data was in flight is not known here (for Parsl workers: a task or result the interchange may wait for forever; docs/executors.md, "A dropped connection in the middle of a workflow"; durable tunnels keep connections)`,
      );
    } else if (inFlight > 0) {
      this.deps.log?.warn(
        data,
        `tunnel ${r.id}: the dropped connection to ${r.target} cut ${cut} connection(s) through it, ${inFlight} with data in flight, which is lost (for Parsl workers: a task or result the interchange may wait for forever; docs/executors.md, "A dropped connection in the middle of a workflow"; durable tunnels keep connections)`,
      );
    } else {
      this.deps.log?.info(
        data,
        `tunnel ${r.id}: the dropped connection to ${r.target} cut ${cut} idle connection(s) through it; nothing was in flight`,
      );
    }
    this.deps.events?.emit("tunnel.cut", data);
  }

  protected setState(state: TunnelState, extra: Record<string, unknown> = {}): void {
    this.rec.state = state;
    this.emit(extra);
  }

  protected portChanged(
    which: "remote_port" | "dial_port",
    from: number,
    to: number,
    reason: string,
  ): void {
    if (from === to || from === 0) return;
    this.rec.port_changes.push({ at: Date.now(), which, from, to, reason });
    this.deps.log?.warn(
      { id: this.rec.id, which, from, to, reason },
      `tunnel ${this.rec.id}: ${which} moved`,
    );
  }

  /** Borrow the target's connection and follow its reconnects. */
  protected async acquire(): Promise<SshLease> {
    const lease = await this.deps.hosts.acquire(this.rec.target, `tunnel:${this.rec.id}`);
    if (!isSshLease(lease)) {
      lease.release();
      throw new SidecarError(
        "INVALID_ARGUMENT",
        `Tunnels need an ssh target, got \`${this.rec.target}\``,
      );
    }
    this.lease = lease;
    const conn = lease.connection;
    const onDown = (err: Error): void => {
      if (this.closing || this.rec.state === "closed") return;
      this.rec.error = err.message;
      this.noteCut();
      this.setState("reconnecting");
      this.onDown();
    };
    const onReady = (): void => {
      if (this.closing || this.rec.state === "closed") return;
      void this.reestablish();
    };
    const onFailed = (err: Error): void => {
      if (this.closing) return;
      this.rec.error = err.message;
      this.setState("failed");
    };
    conn.on("down", onDown);
    conn.on("ready", onReady);
    conn.on("failed", onFailed);
    this.unhook.push(
      () => conn.off("down", onDown),
      () => conn.off("ready", onReady),
      () => conn.off("failed", onFailed),
    );
    return lease;
  }

  private async reestablish(): Promise<void> {
    try {
      await this.reopen();
      this.rec.reconnects++;
      const check = await this.check();
      this.rec.error = check.ok ? null : `end-to-end check failed: ${check.error}`;
      this.setState("open", { check });
    } catch (err) {
      if (this.closing) return;
      this.rec.error = (err as Error).message;
      this.emit({ error: this.rec.error });
    }
  }

  /** Recording a check result. */
  protected noteCheck(r: CheckResult): CheckResult {
    this.rec.last_check = r;
    return r;
  }

  protected releaseLease(): void {
    for (const u of this.unhook.splice(0)) u();
    this.lease?.release();
    this.lease = undefined;
  }

  /** the link went down: drop what lived on it */
  protected abstract onDown(): void;

  /** connections the transport carried itself (a direct forward) that a drop cut: open, or ended since `_since` */
  protected directCut(_since: number): number {
    return 0;
  }
  /** the link is back: re-create listeners/relays (ports may move) */
  protected abstract reopen(): Promise<void>;
  abstract check(): Promise<CheckResult>;
}
