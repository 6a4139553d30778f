/**
 * The command lines that start and tend the head-node relays. The programs are in
 * src/remote/tunnels/: relay.py (both relays: `plain` and `durable`), relay-port.sh and
 * kill-relay.sh; each says what it reads and prints.
 */
import { pyCommand, shCommand } from "../remote/index.js";

/**
 * The state directory of durable relays on the pool (one subdirectory per relay, removed when it
 * exits), as a shell word: it expands on the pool.
 */
const RELAY_STATE_ROOT = { shell: '"$HOME"/.parsl-sidecar/relays' };

/**
 * Command that starts the plain relay with `python`: it listens on listenHost:listenPort (0: any),
 * forwards each connection to 127.0.0.1:targetPort, and exits when its stdin closes.
 */
export function relayCommand(
  python: string,
  listenHost: string,
  listenPort: number,
  targetPort: number,
  bindWaitS: number,
): string {
  const args = ["plain", listenHost, listenPort, "127.0.0.1", targetPort, bindWaitS];
  return `exec ${pyCommand(python, "tunnels/relay.py", args, { unbuffered: true })}`;
}

export interface DurableRelayArgs {
  python: string;
  listenHost: string;
  listenPort: number;
  bindWaitS: number;
  upstreamPort: number;
  resumeS: number;
  pingS: number;
  relayId: string;
}

/** Command that starts the durable relay (it reads its secret from stdin). */
export function durableRelayCommand(a: DurableRelayArgs): string {
  const args = [
    "durable",
    a.listenHost,
    a.listenPort,
    a.bindWaitS,
    a.upstreamPort,
    RELAY_STATE_ROOT,
    a.resumeS,
    a.pingS,
    a.relayId,
  ];
  const relay = pyCommand(a.python, "tunnels/relay.py", args, { unbuffered: true });
  return `umask 077; mkdir -p ${RELAY_STATE_ROOT.shell} && exec ${relay}`;
}

/** Command that tells a running relay the forwarded port moved (it reads the file at its next connect). */
export function relayPortCommand(relayId: string, port: number): string {
  return shCommand("tunnels/relay-port.sh", [RELAY_STATE_ROOT, relayId, port]);
}

/**
 * Command that ends a relay that did not come back (its process group, only if the group leader's
 * command line names this relay), and prints `KILLED <pgid>` when it did.
 */
/** Prints `ALIVE` while the relay RELAY_ID still runs as group PGID, else `GONE` (remote/tunnels/relay-alive.sh). */
export function relayAliveCommand(relayId: string, pgid: number): string {
  return shCommand("tunnels/relay-alive.sh", [relayId, pgid]);
}

export function killRelayCommand(relayId: string, pgid: number): string {
  return shCommand("tunnels/kill-relay.sh", [RELAY_STATE_ROOT, relayId, pgid]);
}
