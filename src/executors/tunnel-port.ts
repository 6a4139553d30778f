/**
 * What the executors service needs from the tunnels service: a reverse tunnel from a pool to
 * the interchange here, with a relay on the head node for compute nodes, and its pool-side
 * address. services.ts adapts the tunnels service to this.
 */
export interface WorkerTunnelRequest {
  /** ssh target of the pool's head node */
  target: string;
  /** the interchange's port on 127.0.0.1 here */
  localPort: number;
  /** compute nodes must reach it: bind the cluster-side address or run a relay */
  relay: boolean;
  owner: string;
  /** for listings: the executor label */
  label: string;
}

export interface WorkerTunnel {
  id: string;
  /** the address workers dial on the pool side (127.0.0.1, or the relay's cluster-side address) */
  dialHost: string;
  dialPort: number;
}

export interface WorkerTunnels {
  open(req: WorkerTunnelRequest): Promise<WorkerTunnel>;
  close(id: string): Promise<void>;
  /** an end-to-end check through the tunnel (from the pool to this machine), when the service offers one */
  check?(id: string): Promise<{ ok: boolean; error?: string }>;
  /** the tunnel, if it is open (or reconnecting) */
  get(id: string):
    | {
        id: string;
        target: string;
        localPort: number;
        dialHost: string;
        dialPort: number;
        state: string;
      }
    | undefined;
}

/** The part of the tunnels service's manager this module uses (structurally typed). */
export interface TunnelManagerLike {
  open(p: {
    target: string;
    kind: "reverse";
    local_port: number;
    bind: "cluster" | "loopback";
    durable?: boolean;
    owner: string;
    label?: string;
  }): Promise<TunnelRecordLike>;
  close(id: string, reason?: string): Promise<unknown>;
  list(): TunnelRecordLike[];
  check?(id: string): Promise<{ ok: boolean; error?: string }>;
}

export interface TunnelRecordLike {
  id: string;
  target: string;
  state: string;
  reach: string;
  local_port: number;
  dial_host: string;
  dial_port: number;
  dial_hosts: string[];
}

/**
 * Where workers dial: loopback for a head-node tunnel; for a cluster-side one every address of
 * the head node, its preferred one first (Parsl's `-a` takes a comma-separated list and uses the
 * first that answers, so compute nodes find the address they can route to).
 */
export function dialAddresses(rec: TunnelRecordLike): string {
  if (rec.reach === "loopback" || rec.reach === "local") return rec.dial_host;
  return [...new Set([rec.dial_host, ...rec.dial_hosts])]
    .filter((a) => /^[0-9.]+$|^[0-9a-fA-F:]+$/.test(a))
    .join(",");
}

/** Adapt the tunnels service's manager to what completion and preflight need. */
export function workerTunnels(manager: TunnelManagerLike): WorkerTunnels {
  const view = (r: TunnelRecordLike): ReturnType<WorkerTunnels["get"]> => ({
    id: r.id,
    target: r.target,
    localPort: r.local_port,
    dialHost: dialAddresses(r),
    dialPort: r.dial_port,
    state: r.state,
  });
  return {
    async open(req) {
      // durable: a dropped SSH connection must not lose the tasks and results in flight (the
      // interchange would wait for them forever: docs/executors.md)
      const rec = await manager.open({
        target: req.target,
        kind: "reverse",
        local_port: req.localPort,
        bind: req.relay ? "cluster" : "loopback",
        durable: true,
        owner: req.owner,
        label: req.label,
      });
      return { id: rec.id, dialHost: dialAddresses(rec), dialPort: rec.dial_port };
    },
    async close(id) {
      await manager.close(id, "released by its executors owner");
    },
    ...(manager.check ? { check: (id: string) => manager.check!(id) } : {}),
    get(id) {
      const rec = manager
        .list()
        .find((r) => r.id === id && r.state !== "closed" && r.state !== "failed");
      return rec ? view(rec) : undefined;
    },
  };
}
