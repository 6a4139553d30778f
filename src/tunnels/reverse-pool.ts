/**
 * What a reverse tunnel looks at and tidies on the pool's head node over exec (besides its relay
 * and its check): the inspection of its python and addresses, and the reclaim after a reconnect.
 */
import type { SshLease } from "../ssh/connections.js";
import type { Logger } from "../util/logger.js";
import { inspectCommand, parseLines, reclaimCommand } from "./pool-commands.js";
import type { PoolSession } from "./reverse-check.js";

export interface PoolInfo {
  /** a python >= 3.4 for a relay, if the pool has one */
  python: string | undefined;
  /** the head node's non-loopback IPv4 addresses, its own first (asked for with `cluster`) */
  dialHosts: string[] | undefined;
  /** what listens on the port asked about */
  listeners: string[];
}

/**
 * What the pool has: its python3 (for a relay) and, for a tunnel compute nodes dial
 * (`cluster`), its non-loopback addresses, the head node's own first; with a port, also what
 * listens on it.
 */
export async function inspectPool(
  lease: SshLease,
  cluster: boolean,
  port?: number,
): Promise<PoolInfo> {
  const info = parseLines((await lease.exec(inspectCommand(port), { timeoutMs: 20_000 })).stdout);
  const python = info.PYTHON || undefined;
  const listeners = (info.LISTENERS ?? "").split(/\s+/).filter(Boolean);
  if (!cluster) return { python, dialHosts: undefined, listeners };
  const addrs = (info.ADDRS ?? "").split(/\s+/).filter((a) => a && !a.startsWith("127."));
  const hostAddr = info.HOSTADDR && !info.HOSTADDR.startsWith("127.") ? info.HOSTADDR : undefined;
  const dialHosts = [...new Set([...(hostAddr ? [hostAddr] : []), ...addrs])];
  return { python, dialHosts, listeners };
}

/**
 * After a reconnect: the previous connection may still be alive on the pool (a network drop)
 * and hold the tunnel's ports there; end it (and its relay's group, given `relayPgid`) so that
 * the tunnel keeps its ports and the workers dialling them reconnect. Best effort: if it fails,
 * the ports move (reported); either way it is said in the log.
 */
export async function reclaimPool(
  lease: SshLease,
  session: PoolSession,
  relayPgid: number | null,
  id: string,
  log: Logger | undefined,
): Promise<void> {
  try {
    const r = await lease.exec(reclaimCommand(session, relayPgid), { timeoutMs: 20_000 });
    const ended = r.stdout.split("\n").filter((l) => l.startsWith("KILLED"));
    if (ended.length > 0)
      log?.warn(
        { id, ended },
        `tunnel ${id}: ended what the dropped connection left holding its ports on the pool`,
      );
  } catch (err) {
    log?.warn(
      { id, err: (err as Error).message },
      `tunnel ${id}: could not check the pool for the dropped connection's leftovers`,
    );
  }
}
