// Shared set-up for the SSH tests: a private sshd, an ssh config naming it, and a pool.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll } from "vitest";
import { SidecarClient } from "../../src/client/client.js";
import { Daemon } from "../../src/daemon/daemon.js";
import { EventBus } from "../../src/events.js";
import { SSH_CONFIG_ENV } from "../../src/ssh/config.js";
import type { HostLease } from "../../src/ssh/host.js";
import { SshConnections, type SshConnectionsOptions } from "../../src/ssh/connections.js";
import { sshdEntry, writeSshConfig, type SshConfigEntry } from "../testbed/ssh-config.js";
import { makeTempDir } from "../testbed/registry.js";
import { startSshd, type Sshd, type SshdOptions } from "../testbed/sshd.js";

export interface SshSetup {
  sshd: Sshd;
  configPath: string;
  events: EventBus;
  pool: SshConnections;
}

/** The config entry for `sshd` under `alias`: its key, its known_hosts, no agent. */
export function entryFor(
  alias: string,
  sshd: Sshd,
  extra: Record<string, string | number> = {},
  over: Partial<SshConfigEntry> = {},
): SshConfigEntry {
  return sshdEntry(alias, sshd, {
    extra: { IdentitiesOnly: "yes", IdentityAgent: "none", StrictHostKeyChecking: "yes", ...extra },
    ...over,
  });
}

/** Start an sshd and a pool that reaches it as alias `pool`. */
export async function sshSetup(
  opts: {
    sshd?: SshdOptions;
    extra?: Record<string, string | number>;
    pool?: SshConnectionsOptions;
    entries?: (s: Sshd) => SshConfigEntry[];
  } = {},
): Promise<SshSetup> {
  const sshd = await startSshd(opts.sshd ?? {});
  const entries = [entryFor("pool", sshd, opts.extra), ...(opts.entries?.(sshd) ?? [])];
  const configPath = writeSshConfig(sshd.dir, entries, "client_config");
  const events = new EventBus();
  const pool = new SshConnections({
    configPath,
    events,
    reconnect: { initialMs: 50, maxMs: 1000 },
    ...opts.pool,
  });
  return { sshd, configPath, events, pool };
}

/** An sshd and a lease on it for the tests of one describe block (set in beforeAll). */
export function poolPerBlock(opts: Parameters<typeof sshSetup>[0] = {}): {
  s: SshSetup;
  lease: HostLease;
} {
  const held = {} as { s: SshSetup; lease: HostLease };
  beforeAll(async () => {
    held.s = await sshSetup(opts);
    held.lease = await held.s.pool.acquire("pool", "test");
  }, 30000);
  afterAll(async () => {
    held.lease?.release();
    await held.s?.pool.close();
    await held.s?.sshd.stop();
  }, 30000);
  return held;
}

/** A unique token for process command lines (to find them with pgrep). */
export function token(): string {
  return String(100000 + (randomBytes(3).readUIntBE(0, 3) % 800000));
}

/** Poll `check` until it returns true or `timeoutMs` passes; returns the last value. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  timeoutMs = 10000,
  everyMs = 50,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

export interface DaemonWithPool {
  s: SshSetup;
  daemon: Daemon;
  client: SidecarClient;
  /** a private directory; the daemon's runtime directory is `run` in it */
  dir: string;
}

/**
 * For the tests of one describe block: an sshd that the ssh config (PARSL_SIDECAR_SSH_CONFIG)
 * names `pool`, a real daemon in this process and an RPC client to it. Set in beforeAll (hooks
 * registered after this call run after it), stopped in afterAll.
 */
export function daemonWithPoolPerBlock(
  name: string,
  setupOpts: () => Parameters<typeof sshSetup>[0] = () => ({}),
): DaemonWithPool {
  const held = {} as DaemonWithPool;
  beforeAll(async () => {
    held.s = await sshSetup(setupOpts());
    process.env[SSH_CONFIG_ENV] = held.s.configPath;
    held.dir = makeTempDir(name);
    held.daemon = await Daemon.start({ runtimeDir: join(held.dir, "run"), stderrLevel: "silent" });
    held.client = SidecarClient.connect(held.daemon.connectionFile);
  }, 30000);
  afterAll(async () => {
    held.client?.close();
    await held.daemon?.close();
    delete process.env[SSH_CONFIG_ENV];
    await held.s?.sshd.stop();
  }, 30000);
  return held;
}

/**
 * End an ssh2 link's client from this side (its `down` follows, then a reconnect), leaving the
 * server's other connections alone. Reaches past the link's interface on purpose: tests only.
 */
export function endSsh2Link(link: unknown): void {
  const client = (link as { client?: { end(): void } }).client;
  if (!client) throw new Error("not a connected ssh2 link");
  client.end();
}

/** The SSH transport this vitest project runs the tests over (vitest.config.ts). */
export function transport(): "ssh2" | "openssh" {
  return process.env.PARSL_SIDECAR_SSH_TRANSPORT === "openssh" ? "openssh" : "ssh2";
}

/**
 * TCP_NODELAY of sshd's side of every connection to `port` (test/fixtures/tcp-nodelay.py borrows
 * each socket from sshd with pidfd_getfd): what Nagle's algorithm does to that connection.
 */
export function sshdNodelay(port: number): { peer_port: number; nodelay: number }[] {
  return JSON.parse(
    execFileSync("python3", [
      join(import.meta.dirname, "../fixtures/tcp-nodelay.py"),
      String(port),
    ]).toString(),
  );
}
