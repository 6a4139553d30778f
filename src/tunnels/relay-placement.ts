/**
 * How workers reach a reverse tunnel (docs/tunnels.md, "Compute nodes: GatewayPorts and the
 * relay"): through sshd's own listener, or through a relay placed on the head node, and what they
 * dial then.
 */
import { SidecarError } from "../errors.js";
import type { Relay } from "./relay.js";
import type { Reach, TunnelRecord } from "./types.js";

/** Addresses that mean "every address" in a tunnel's `remote_host` or sshd's listeners. */
export const WILDCARDS = new Set(["0.0.0.0", "::", "*", ""]);

/**
 * How compute nodes reach a tunnel whose sshd listener was asked for on `bindAddr`, from what
 * sshd really bound (`listeners`): through that bind (`gateway`, sshd's GatewayPorts allows it),
 * through a relay (the pool has `python`), or not at all (`loopback`; an error for
 * `bind: "cluster"`).
 */
export function chooseReach(
  rec: TunnelRecord,
  bindAddr: string,
  listeners: string[],
  python: string | undefined,
): Reach {
  const gateway = listeners.some(
    (a) => WILDCARDS.has(a) || (a === bindAddr && a !== "127.0.0.1" && a !== "::1"),
  );
  if (gateway) return "gateway";
  if (python) return "relay";
  if (rec.bind === "cluster")
    throw new SidecarError(
      "TUNNEL_FAILED",
      `\`${rec.target}\` binds forwarded ports to loopback only (sshd GatewayPorts no) and has no python3 for a relay: compute nodes cannot reach the tunnel. Set \`GatewayPorts clientspecified\` in its sshd_config, install python3, or open with bind "loopback".`,
    );
  return "loopback";
}

/** Record sshd's listener on `bindAddr:port` as what workers dial (no relay). */
export function dialSshd(rec: TunnelRecord, bindAddr: string, port: number): void {
  rec.dial_host =
    rec.reach === "gateway"
      ? WILDCARDS.has(bindAddr)
        ? (rec.dial_hosts[0] ?? "127.0.0.1")
        : bindAddr
      : "127.0.0.1";
  rec.dial_port = port;
}

/** Starts a relay listening on `port` (0: any), waiting up to `waitS` s for a held port. */
export type StartRelay = (port: number, waitS: number) => Promise<Relay>;

/** The address a relay listens on for workers: every address for a wildcard, else `host`. */
export function relayListenHost(host: string): string {
  return WILDCARDS.has(host) ? "0.0.0.0" : host;
}

/**
 * Start a relay on `wantDial` if it can be had within 3 s (0: any port), else on any port (the
 * tunnel reports it as a moved port).
 */
export async function placeRelay(start: StartRelay, wantDial: number): Promise<Relay> {
  try {
    return await start(wantDial, wantDial ? 3 : 0);
  } catch (err) {
    if (!wantDial || !(err instanceof SidecarError) || !err.data?.bind_failed) throw err;
    return await start(0, 0);
  }
}

/** Record a relay listening on `host` as what workers dial. */
export function dialRelay(rec: TunnelRecord, host: string, relay: Relay): void {
  rec.dial_port = relay.port;
  rec.dial_host = host === "0.0.0.0" ? (rec.dial_hosts[0] ?? "127.0.0.1") : host;
  rec.relay = {
    interpreter: relay.interpreter,
    pgid: relay.pgid,
    listen: `${host}:${relay.port}`,
  };
}
