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
  /** the tunnel, if it is open (or reconnecting) */
  get(id: string): { id: string; target: string; localPort: number; dialHost: string; dialPort: number; state: string } | undefined;
}
