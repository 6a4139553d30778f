/** The tunnel record reported by tunnels.open/list and in `tunnel.state` events. */

export type TunnelKind = "reverse" | "local";
export type TunnelState = "opening" | "open" | "reconnecting" | "failed" | "closed";
export type BindMode = "loopback" | "cluster" | "auto";
/** how workers reach a reverse tunnel: sshd's own non-loopback bind, a relay, or loopback only */
export type Reach = "gateway" | "relay" | "loopback" | "local";

export interface PortChange {
  at: number;
  /** `remote_port` (sshd's listener) or `dial_port` (what workers dial) */
  which: "remote_port" | "dial_port";
  from: number;
  to: number;
  reason: string;
}

export interface CheckResult {
  ok: boolean;
  at: number;
  ms?: number;
  error?: string;
}

export interface TunnelRecord {
  id: string;
  kind: TunnelKind;
  target: string;
  owner: string;
  /** what it is for, in listings (e.g. the executor label) */
  label: string | null;
  state: TunnelState;
  bind: BindMode;
  reach: Reach;
  /** the service here (reverse) or the listener here (local) */
  local_host: string;
  local_port: number;
  /** reverse: sshd's listening address on the pool; local: the host the pool connects to */
  remote_host: string;
  /** reverse: sshd's listening port on the pool; local: the port the pool connects to */
  remote_port: number;
  /** what clients dial: workers on the pool (reverse), or programs here (local) */
  dial_host: string;
  dial_port: number;
  /** every non-loopback IPv4 address of the pool host (reverse), for workers that try several */
  dial_hosts: string[];
  relay: { interpreter: string; pgid: number | null; listen: string } | null;
  bytes_in: number;
  bytes_out: number;
  connections: number;
  total_connections: number;
  /** connections cut by dropped SSH connections, and how many of them had data in flight */
  cut_connections: number;
  cut_in_flight: number;
  /**
   * the transport connects each connection to the service itself (our OpenSSH master's direct
   * forward): nothing is copied here, so bytes_in/bytes_out stay 0 and in-flight data is unknown
   */
  direct: boolean;
  /** durable: whether connections survive dropped SSH connections (through the relay) */
  durable: boolean;
  /** durable: connections resumed after a cut */
  resumed_connections: number;
  reconnects: number;
  port_changes: PortChange[];
  last_check: CheckResult | null;
  error: string | null;
  created_at: number;
}

/** What a tunnel implementation offers the manager. */
export interface Tunnel {
  readonly id: string;
  readonly owner: string;
  record(): TunnelRecord;
  open(): Promise<void>;
  close(reason: string): Promise<void>;
  /** run the end-to-end check now */
  check(): Promise<CheckResult>;
}
