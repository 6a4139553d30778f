/** Every tunnel the sidecar holds, by id and by owner; owners that are pids are watched. */
import { randomBytes } from "node:crypto";
import getPort from "get-port";
import { SidecarError } from "../errors.js";
import { parsePort } from "../ssh/target.js";
import type { TunnelDeps, TunnelSpec } from "./base.js";
import { LocalTunnel } from "./local.js";
import { ReverseTunnel } from "./reverse.js";
import { DurableReverseTunnel } from "./reverse-durable.js";
import type { BindMode, CheckResult, Tunnel, TunnelKind, TunnelRecord } from "./types.js";

export interface OpenTunnelParams {
  target: string;
  kind: TunnelKind;
  /** reverse: the service here (default: a free port, reported); local: the listener here (default: free) */
  local_port?: number;
  /** @default "127.0.0.1" */
  local_host?: string;
  /** reverse: the port workers dial (default: any free one on the pool); local: required, the port to reach */
  remote_port?: number;
  /** reverse: the pool address to bind/dial (default: all, dial the head's address); local: the host to reach @default "127.0.0.1" */
  remote_host?: string;
  /** reverse only @default "auto" */
  bind?: BindMode;
  /** reverse only: keep connections across dropped SSH connections (a relay on the pool; needs python3 there) @default false */
  durable?: boolean;
  /** `job:<id>`, `pid:<n>` (closed when that process here exits), `client:<id>`, or any label */
  owner: string;
  /** what it is for, shown in listings */
  label?: string;
}

export class TunnelManager {
  private readonly tunnels = new Map<string, Tunnel>();
  private watcher: NodeJS.Timeout | undefined;

  constructor(private readonly deps: TunnelDeps) {}

  async open(p: OpenTunnelParams): Promise<TunnelRecord> {
    const localHost = p.local_host ?? "127.0.0.1";
    const localPort =
      p.local_port === undefined
        ? await getPort({ host: localHost })
        : parsePort(p.local_port, "`local_port`");
    const remotePort = p.remote_port === undefined ? 0 : parsePort(p.remote_port, "`remote_port`");
    if (p.kind === "local" && p.durable)
      throw new SidecarError(
        "INVALID_ARGUMENT",
        "`durable` is for reverse tunnels (workers on the pool reaching a service here); a local tunnel cannot have it",
      );
    if (p.kind === "local" && remotePort === 0)
      throw new SidecarError(
        "INVALID_ARGUMENT",
        "A local tunnel needs `remote_port`: the port to reach from the pool",
      );
    let id: string;
    do id = `tun-${randomBytes(3).toString("hex")}`;
    while (this.tunnels.has(id));
    const spec: TunnelSpec = {
      id,
      kind: p.kind,
      target: p.target,
      owner: p.owner,
      label: p.label ?? null,
      local_host: localHost,
      local_port: localPort,
      remote_host: p.remote_host ?? (p.kind === "local" ? "127.0.0.1" : ""),
      remote_port: remotePort,
      bind: p.kind === "local" ? "loopback" : (p.bind ?? "auto"),
      durable: p.kind === "reverse" && p.durable === true,
    };
    const t: Tunnel =
      p.kind !== "reverse"
        ? new LocalTunnel(spec, this.deps)
        : spec.durable
          ? new DurableReverseTunnel(spec, this.deps)
          : new ReverseTunnel(spec, this.deps);
    this.tunnels.set(id, t);
    try {
      await t.open();
    } catch (err) {
      this.tunnels.delete(id);
      throw err;
    }
    if (p.owner.startsWith("pid:")) this.watchPids();
    return t.record();
  }

  list(): TunnelRecord[] {
    return [...this.tunnels.values()].map((t) => t.record());
  }

  get(id: string): Tunnel {
    const t = this.tunnels.get(id);
    if (!t)
      throw new SidecarError(
        "TUNNEL_NOT_FOUND",
        `No tunnel \`${id}\`; tunnels.list shows the open ones`,
        { data: { id } },
      );
    return t;
  }

  async check(id: string): Promise<CheckResult> {
    return await this.get(id).check();
  }

  async close(id: string, reason = "closed"): Promise<TunnelRecord> {
    const t = this.get(id);
    this.tunnels.delete(id);
    await t.close(reason);
    return t.record();
  }

  /** Close every tunnel of `owner` (the jobs module calls this when a job ends). */
  async closeOwner(owner: string, reason = `owner ${owner} ended`): Promise<number> {
    const ids = [...this.tunnels.values()].filter((t) => t.owner === owner).map((t) => t.id);
    for (const id of ids) await this.close(id, reason).catch(() => undefined);
    return ids.length;
  }

  async closeAll(reason = "sidecar shutting down"): Promise<void> {
    clearInterval(this.watcher);
    this.watcher = undefined;
    await Promise.all(
      [...this.tunnels.keys()].map((id) => this.close(id, reason).catch(() => undefined)),
    );
  }

  private watchPids(): void {
    if (this.watcher) return;
    this.watcher = setInterval(() => {
      const owners = new Set(
        [...this.tunnels.values()].map((t) => t.owner).filter((o) => o.startsWith("pid:")),
      );
      if (owners.size === 0) {
        clearInterval(this.watcher);
        this.watcher = undefined;
        return;
      }
      for (const o of owners) {
        const pid = Number(o.slice(4));
        let alive = Number.isInteger(pid) && pid > 0;
        try {
          if (alive) process.kill(pid, 0);
        } catch (err) {
          alive = (err as NodeJS.ErrnoException).code === "EPERM";
        }
        if (!alive) void this.closeOwner(o, `owner process ${pid} exited`);
      }
    }, 1000);
    this.watcher.unref();
  }
}
