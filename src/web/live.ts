/**
 * What the live view shows, gathered in the sidecar: jobs, SSH connections and tunnels from their
 * services' list methods, transfers from `transfer.*` events, and bytes-per-second samples (once a second, the
 * last ten minutes) of tunnels and transfers for the charts.
 */
import type { DaemonContext } from "../rpc/service.js";
import type { SidecarEvent } from "../events.js";

export interface RateSample {
  ts: number;
  /** bytes/s into the workstation through tunnels */
  tunnel_in: number;
  /** bytes/s out of the workstation through tunnels */
  tunnel_out: number;
  /** bytes/s moved by transfers */
  transfer: number;
}

const KEEP_SAMPLES = 600;
const KEEP_TRANSFERS = 200;

/** First finite number among `obj[name]` for the names, 0 if none. */
export function num(obj: unknown, ...names: string[]): number {
  if (obj === null || typeof obj !== "object") return 0;
  for (const n of names) {
    const v = (obj as Record<string, unknown>)[n];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  return 0;
}

/** A list result may be an array or an object holding one under `key`. */
export function listOf(result: unknown, key: string): Array<Record<string, unknown>> {
  const arr = Array.isArray(result) ? result : (result as Record<string, unknown> | null)?.[key];
  return Array.isArray(arr) ? (arr as Array<Record<string, unknown>>) : [];
}

export function tunnelBytes(t: Record<string, unknown>): { in: number; out: number } {
  const nested = t.bytes as Record<string, unknown> | undefined;
  return {
    in: num(t, "bytes_in", "bytesIn", "rx_bytes") || num(nested, "in", "rx"),
    out: num(t, "bytes_out", "bytesOut", "tx_bytes") || num(nested, "out", "tx"),
  };
}

export function transferDone(d: Record<string, unknown>): number {
  return num(d, "bytes", "done", "bytes_done", "transferred", "bytes_transferred");
}

export class LiveState {
  readonly samples: RateSample[] = [];
  readonly transfers = new Map<string, Record<string, unknown>>();
  private transferBytes = 0;
  private lastTunnel: { in: number; out: number } | undefined;
  private lastTick = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly unlisten: () => void;
  private listeners = new Set<(s: RateSample, tunnels: Array<Record<string, unknown>>) => void>();

  constructor(private readonly ctx: Pick<DaemonContext, "call" | "hasMethod" | "events">) {
    this.unlisten = ctx.events.on(["transfer"], (e) => this.onTransfer(e));
  }

  /** Start sampling (idempotent); each sample goes to the listeners with the tunnel list. */
  start(): void {
    if (this.timer) return;
    this.lastTick = Date.now();
    this.timer = setInterval(() => void this.tick(), 1000);
    this.timer.unref();
  }

  onSample(listener: (s: RateSample, tunnels: Array<Record<string, unknown>>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async jobs(): Promise<{ available: boolean; jobs: Array<Record<string, unknown>> }> {
    if (!this.ctx.hasMethod("jobs.list")) return { available: false, jobs: [] };
    return { available: true, jobs: listOf(await this.ctx.call("jobs.list", {}), "jobs") };
  }

  async connections(): Promise<{
    available: boolean;
    connections: Array<Record<string, unknown>>;
  }> {
    if (!this.ctx.hasMethod("ssh.list")) return { available: false, connections: [] };
    return {
      available: true,
      connections: listOf(await this.ctx.call("ssh.list", {}), "connections"),
    };
  }

  async tunnels(): Promise<{ available: boolean; tunnels: Array<Record<string, unknown>> }> {
    if (!this.ctx.hasMethod("tunnels.list")) return { available: false, tunnels: [] };
    return { available: true, tunnels: listOf(await this.ctx.call("tunnels.list", {}), "tunnels") };
  }

  /** Stop a job the way `parsl-sidecar kill` does. */
  async killJob(id: string): Promise<unknown> {
    return await this.ctx.call("jobs.kill", { job: id });
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.unlisten();
    this.listeners.clear();
  }

  private onTransfer(e: SidecarEvent): void {
    const d = e.data;
    const id = String(d.id ?? d.transfer_id ?? d.transferId ?? "");
    if (!id) return;
    const prev = this.transfers.get(id);
    const delta = transferDone(d) - (prev ? transferDone(prev) : 0);
    if (delta > 0) this.transferBytes += delta;
    this.transfers.delete(id); // re-insert: most recent last
    this.transfers.set(id, { ...prev, ...d, id, topic: e.topic, updated: e.ts });
    if (this.transfers.size > KEEP_TRANSFERS)
      this.transfers.delete(this.transfers.keys().next().value!);
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const secs = Math.max((now - this.lastTick) / 1000, 0.001);
    this.lastTick = now;
    let list: Array<Record<string, unknown>> = [];
    try {
      list = (await this.tunnels()).tunnels;
    } catch {
      // the tunnels service failing to list is shown in its own panel, not here
    }
    const total = list
      .map(tunnelBytes)
      .reduce((a, b) => ({ in: a.in + b.in, out: a.out + b.out }), { in: 0, out: 0 });
    const prev = this.lastTunnel ?? total;
    this.lastTunnel = total;
    const sample: RateSample = {
      ts: now,
      tunnel_in: Math.max(0, total.in - prev.in) / secs,
      tunnel_out: Math.max(0, total.out - prev.out) / secs,
      transfer: this.transferBytes / secs,
    };
    this.transferBytes = 0;
    this.samples.push(sample);
    if (this.samples.length > KEEP_SAMPLES) this.samples.shift();
    for (const l of this.listeners) l(sample, list);
  }
}
