/**
 * Tunnel throughput, all against one private sshd in one run: the sidecar's reverse tunnel over
 * each SSH transport (`--transport ssh2|openssh` for one; default both), OpenSSH `ssh -N -R`
 * (same key, the same cipher pinned; and with its default ciphers), and direct TCP, for one
 * stream and for 32 parallel streams, and 64-byte round trips; plus the time to open a tunnel
 * and to recover after sshd's connections are killed, per transport. `--quick`: 128 MiB
 * instead of 1 GiB, one repetition.
 * MB/s is 10^6 bytes per second. The last line of stdout is one JSON object.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { mkdtempSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import getPort from "get-port";
import { EventBus } from "../src/events.js";
import { SshConnections } from "../src/ssh/connections.js";
import type { TransportKind } from "../src/ssh/link.js";
import { TunnelManager } from "../src/tunnels/manager.js";
import { stopAll } from "../test/testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../test/testbed/ssh-config.js";
import { startSshd, type Sshd } from "../test/testbed/sshd.js";
import { echoAll, echoServer, pattern } from "../test/tunnels/helpers.js";
import { benchTransports, CIPHER, cpuSeconds, masterPid, median } from "./lib/transports.js";

const quick = process.argv.includes("--quick");
const TOTAL = quick ? 128 << 20 : 1 << 30;
const REPS = quick ? 1 : 3;
const PINGS = quick ? 1000 : 3000;
const PARALLEL = 32;
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const transports = benchTransports();

class Traffic {
  private readonly lines: string[] = [];
  private waiter: ((line: string) => void) | undefined;
  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on("line", (l) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(l);
      } else this.lines.push(l);
    });
  }
  next(): Promise<Record<string, number | string>> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(JSON.parse(l));
    return new Promise((r) => (this.waiter = (line) => r(JSON.parse(line))));
  }
  async run(port: number, streams: number, bytes: number): Promise<number> {
    this.child.stdin!.write(`${JSON.stringify({ host: "127.0.0.1", port, streams, bytes })}\n`);
    const r = await this.next();
    if (r.error) throw new Error(String(r.error));
    return Number(r.bytes) / 1e6 / (Number(r.ms) / 1000);
  }
  /** p50 and p99 (µs) of small-message round trips through port to the sink's echo, one at a time. */
  async ping(port: number, pings: number, size = 64): Promise<{ p50: number; p99: number }> {
    this.child.stdin!.write(`${JSON.stringify({ host: "127.0.0.1", port, pings, size })}\n`);
    const r = await this.next();
    if (r.error) throw new Error(String(r.error));
    return { p50: Number(r.p50_us), p99: Number(r.p99_us) };
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise<boolean>((r) => {
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.destroy();
      r(true);
    });
    s.on("error", () => r(false));
  });
}

async function waitForPort(port: number, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(port)) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await sleep(20);
  }
}

/** `ssh -N -R` with the given extra options; resolves with the process and the negotiated cipher. */
async function opensshTunnel(
  sshd: Sshd,
  sinkPort: number,
  extra: string[],
): Promise<{ proc: ChildProcess; port: number; cipher: string }> {
  const port = await getPort({ host: "127.0.0.1" });
  const args = [
    ...sshd.sshArgs().slice(0, -1),
    "-v",
    "-N",
    "-o",
    "ExitOnForwardFailure=yes",
    ...extra,
    "-R",
    `127.0.0.1:${port}:127.0.0.1:${sinkPort}`,
    `${sshd.user}@${sshd.host}`,
  ];
  const proc = spawn("ssh", args, { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  await waitForPort(port);
  const cipher = /kex: server->client cipher: (\S+)/.exec(err)?.[1] ?? "unknown";
  return { proc, port, cipher };
}

/**
 * Echo 64 MiB through `port`, calling `drop` once 16 MiB have come back; resolves with the
 * longest gap between echoed chunks after the drop and whether every byte came back in order.
 */
async function streamAcrossDrop(
  port: number,
  drop: () => Promise<unknown>,
): Promise<{ stallMs: number; exact: boolean }> {
  const data = pattern(64 << 20);
  let droppedAt = 0;
  let last = 0;
  let stall = 0;
  const run = echoAll("127.0.0.1", port, data, (n) => {
    const now = performance.now();
    if (droppedAt) stall = Math.max(stall, now - last);
    last = now;
    if (!droppedAt && n >= 16 << 20) {
      droppedAt = now;
      void drop();
    }
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      run.socket.destroy();
      reject(new Error("stream across a drop: not all of it back after 120 s"));
    }, 120_000);
  });
  const back = await Promise.race([run.done, timeout]).finally(() => clearTimeout(timer));
  return { stallMs: stall, exact: back.equals(data) };
}

/** A transport's tunnels in this run: ordinary and durable reverse tunnels to the sink. */
interface Under {
  t: TransportKind;
  pool: SshConnections;
  tunnels: TunnelManager;
  tun: { id: string; dial_port: number };
  durable: { id: string; dial_port: number; relayPid: number };
  /** the durable tunnel's own connection, as the peer's `ssh -R` has its own */
  durablePool: SshConnections;
  durableTunnels: TunnelManager;
  /** processes whose CPU carries the tunnel's bytes: this one, and openssh's master */
  pids: number[];
  durablePids: number[];
  cipher: string;
  opens: number[];
}

async function main(): Promise<void> {
  const sshd = await startSshd({ extraConfig: ["MaxStartups 100"] });
  const traffic = new Traffic(
    spawn("node_modules/.bin/tsx", ["bench/lib/traffic.ts"], {
      stdio: ["pipe", "pipe", "inherit"],
    }),
  );
  const sink = Number((await traffic.next()).sink);
  // the cipher pinned for the openssh transport's master (ssh2 offers it first on AES CPUs)
  const configPath = writeSshConfig(
    sshd.dir,
    [
      sshdEntry("pool", sshd, {
        extra: {
          IdentitiesOnly: "yes",
          IdentityAgent: "none",
          StrictHostKeyChecking: "yes",
          Ciphers: CIPHER,
        },
      }),
    ],
    "bench_config",
  );
  const newPool = (t: TransportKind, runtimeDir: string): SshConnections =>
    new SshConnections({
      configPath,
      events: new EventBus(),
      reconnect: { initialMs: 50, maxMs: 1000 },
      transport: t,
      runtimeDir,
    });
  const reverse = (tunnels: TunnelManager, local_port: number, durable = false) =>
    tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port,
      bind: "loopback",
      owner: "bench",
      ...(durable ? { durable: true } : {}),
    });
  const unders: Under[] = [];
  for (const t of transports) {
    // open time from cold: a new SSH connection, the forward, and the end-to-end check
    const opens: number[] = [];
    for (let i = 0; i < 3; i++) {
      const pool = newPool(t, mkdtempSync(join(tmpdir(), `psc-bench-tun-${t}-`)));
      const tunnels = new TunnelManager({ hosts: pool });
      const t0 = performance.now();
      await reverse(tunnels, sink);
      opens.push(performance.now() - t0);
      await tunnels.closeAll();
      await pool.close();
    }
    const runtimeDir = mkdtempSync(join(tmpdir(), `psc-bench-tun-${t}-`));
    const pool = newPool(t, runtimeDir);
    const tunnels = new TunnelManager({ hosts: pool });
    const tun = await reverse(tunnels, sink);
    // the same through a durable relay (python3 on the pool, framed and acknowledged streams),
    // on an SSH connection of its own: each path is timed alone on its connection, as the peer's
    const durableDir = mkdtempSync(join(tmpdir(), `psc-bench-tun-${t}-`));
    const durablePool = newPool(t, durableDir);
    const durableTunnels = new TunnelManager({ hosts: durablePool });
    const durable = await reverse(durableTunnels, sink, true);
    const master = t === "openssh" ? masterPid(runtimeDir) : undefined;
    const durableMaster = t === "openssh" ? masterPid(durableDir) : undefined;
    if (t === "openssh" && (!master || !durableMaster))
      throw new Error("the openssh transport's master not found");
    unders.push({
      t,
      pool,
      tunnels,
      tun,
      durable: { id: durable.id, dial_port: durable.dial_port, relayPid: durable.relay!.pgid! },
      durablePool,
      durableTunnels,
      pids: master ? [process.pid, master] : [process.pid],
      durablePids: durableMaster ? [process.pid, durableMaster] : [process.pid],
      cipher: pool.list()[0]?.cipher ?? "unknown",
      opens,
    });
  }
  const same = await opensshTunnel(sshd, sink, ["-o", `Ciphers=${CIPHER}`]);
  const dflt = await opensshTunnel(sshd, sink, []);

  // [name, port to send to, pids whose CPU time is the tunnel's cost, relay pid]
  const targets: Array<[string, number, number[], number]> = [
    ...unders.flatMap(
      (u): Array<[string, number, number[], number]> => [
        [u.t, u.tun.dial_port, u.pids, 0],
        [`${u.t}_durable`, u.durable.dial_port, u.durablePids, u.durable.relayPid],
      ],
    ),
    ["openssh_R", same.port, [same.proc.pid!], 0],
    ["openssh_R_default", dflt.port, [dflt.proc.pid!], 0],
    ["direct", sink, [], 0],
  ];
  const cpuOf = (pids: number[]): number => pids.reduce((a, p) => a + cpuSeconds(p), 0);
  // warm up every path (JIT, TCP windows) before measuring
  for (const [, port] of targets) await traffic.run(port, 1, 32 << 20);
  const one: Record<string, number[]> = {};
  const par: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const relayCpu: Record<string, number[]> = {};
  const rtt: Record<string, number[]> = {};
  const rtt99: Record<string, number[]> = {};
  const load0 = loadavg()[0]!;
  for (let rep = 0; rep < REPS; rep++) {
    // a different path first in each repetition, so that load changes hit all alike
    const order = [...targets];
    for (let i = 0; i < rep; i++) order.push(order.shift()!);
    for (const [name, port, pids, relayPid] of order) {
      const c0 = cpuOf(pids);
      const r0 = relayPid ? cpuSeconds(relayPid) : 0;
      (one[name] ??= []).push(await traffic.run(port, 1, TOTAL));
      (par[name] ??= []).push(await traffic.run(port, PARALLEL, TOTAL / PARALLEL));
      const gib = (2 * TOTAL) / 2 ** 30;
      if (pids.length) (cpu[name] ??= []).push((cpuOf(pids) - c0) / gib);
      if (relayPid) (relayCpu[name] ??= []).push((cpuSeconds(relayPid) - r0) / gib);
      // what HTEX's small messages feel: one 64-byte message there and back at a time
      const lat = await traffic.ping(port, PINGS);
      (rtt[name] ??= []).push(lat.p50);
      (rtt99[name] ??= []).push(lat.p99);
      log(
        `rep ${rep + 1} ${name.padEnd(18)} 1 stream ${one[name]!.at(-1)!.toFixed(0)} MB/s   ${PARALLEL} streams ${par[name]!.at(-1)!.toFixed(0)} MB/s${pids.length ? `   tunnel CPU ${cpu[name]!.at(-1)!.toFixed(2)} s/GiB` : ""}   round trip p50 ${lat.p50.toFixed(0)} µs p99 ${lat.p99.toFixed(0)} µs`,
      );
    }
  }
  same.proc.kill();
  dflt.proc.kill();

  const drops: Record<string, { stalls: number[]; exact: boolean; resumed: number }> = {};
  const recoveries: Record<string, { recovers: number[]; flows: number[] }> = {};
  for (const u of unders) {
    await u.durableTunnels.closeAll();
    await u.durablePool.close();
    // a stream through a durable tunnel across a drop: how long it stalls, and whether every
    // byte came back (an echo here; only sshd's processes are killed, the relay lives on as on
    // a pool)
    const echo = await echoServer();
    const dt = await reverse(u.tunnels, echo.port, true);
    const stalls: number[] = [];
    let exact = true;
    for (let i = 0; i < 3; i++) {
      const r = await streamAcrossDrop(dt.dial_port, () => sshd.dropConnections());
      stalls.push(r.stallMs);
      exact &&= r.exact;
      // the next drop only after the tunnel is open again
      const deadline = Date.now() + 60_000;
      while (
        u.tunnels.list().find((x) => x.id === dt.id)!.state !== "open" &&
        Date.now() < deadline
      )
        await sleep(20);
    }
    const dtRec = u.tunnels.list().find((x) => x.id === dt.id)!;
    drops[u.t] = { stalls, exact, resumed: dtRec.resumed_connections };
    await u.tunnels.close(dt.id);
    await echo.close();

    // recovery: kill sshd's connections; time until the tunnel is re-forwarded and checked end to end
    const recovers: number[] = [];
    const flows: number[] = [];
    const rec = () => u.tunnels.list().find((x) => x.id === u.tun.id)!;
    for (let i = 0; i < 3; i++) {
      const before = rec().reconnects;
      await sshd.killConnections();
      const t0 = performance.now();
      let flowAt = 0;
      let noticed = false;
      for (;;) {
        const r = rec();
        noticed ||= r.state === "reconnecting" || r.reconnects > before;
        // new connections flow once sshd listens again for the new session (before the check ends)
        if (noticed && !flowAt && (await canConnect(r.dial_port))) flowAt = performance.now();
        if (r.reconnects > before && r.state === "open") break;
        if (performance.now() - t0 > 60_000)
          throw new Error(
            `the ${u.t} tunnel did not recover in 60 s (drop ${i + 1}): state ${r.state}, ` +
              `reconnects ${before} -> ${r.reconnects}, error ${r.error ?? "none"}, ` +
              `last check ${JSON.stringify(r.last_check)}`,
          );
        await sleep(5);
      }
      recovers.push(performance.now() - t0);
      flows.push((flowAt || performance.now()) - t0);
      await traffic.run(rec().dial_port, 1, 1 << 20);
    }
    recoveries[u.t] = { recovers, flows };
    await u.tunnels.closeAll();
    await u.pool.close();
  }
  traffic.child.stdin!.end();
  await stopAll();

  const round = (x: number): number => Math.round(x);
  const r2 = (x: number): number => +x.toFixed(2);
  const m = (xs: Record<string, number[]>, name: string): number => median(xs[name]!);
  const result = {
    bench: "tunnel",
    quick,
    bytes: TOTAL,
    parallel_streams: PARALLEL,
    reps: REPS,
    cipher_pinned: CIPHER,
    // per transport: the sidecar's reverse tunnel, and the ratios against OpenSSH's own `ssh -R`
    // with the same cipher (MB/s: ours / theirs, higher is better; round trip: ours / theirs)
    transports: Object.fromEntries(
      unders.map((u) => {
        const t = u.t;
        const d = `${t}_durable`;
        return [
          t,
          {
            cipher: u.cipher,
            mbps: round(m(one, t)),
            parallel_mbps: round(m(par, t)),
            rtt_p50_us: round(m(rtt, t)),
            rtt_p99_us: round(m(rtt99, t)),
            cpu_s_per_gib: r2(m(cpu, t)),
            ratio_vs_openssh: r2(m(one, t) / m(one, "openssh_R")),
            ratio_vs_openssh_parallel: r2(m(par, t) / m(par, "openssh_R")),
            rtt_ratio_vs_openssh: r2(m(rtt, t) / m(rtt, "openssh_R")),
            rtt_p99_ratio_vs_openssh: r2(m(rtt99, t) / m(rtt99, "openssh_R")),
            ratio_vs_openssh_default: r2(m(one, t) / m(one, "openssh_R_default")),
            ratio_vs_direct: r2(m(one, t) / m(one, "direct")),
            goal: { mbps_ratio: 1.0, rtt_ratio: 1.1 },
            met:
              m(one, t) >= m(one, "openssh_R") &&
              m(par, t) >= m(par, "openssh_R") &&
              m(rtt, t) <= 1.1 * m(rtt, "openssh_R"),
            durable_mbps: round(m(one, d)),
            durable_parallel_mbps: round(m(par, d)),
            durable_rtt_p50_us: round(m(rtt, d)),
            durable_rtt_p99_us: round(m(rtt99, d)),
            durable_ratio_vs_ordinary: r2(m(one, d) / m(one, t)),
            durable_cpu_s_per_gib: r2(m(cpu, d)),
            durable_relay_cpu_s_per_gib: r2(m(relayCpu, d)),
            durable_drop_stall_ms: round(median(drops[t]!.stalls)),
            durable_drop_bytes_exact: drops[t]!.exact,
            durable_resumed_connections: drops[t]!.resumed,
            open_ms: round(median(u.opens)),
            recover_ms: round(median(recoveries[t]!.recovers)),
            recover_flow_ms: round(median(recoveries[t]!.flows)),
          },
        ];
      }),
    ),
    // the peer: OpenSSH `ssh -N -R`, same key and sshd, the same cipher; and as it runs by default
    peer: {
      cipher: same.cipher,
      mbps: round(m(one, "openssh_R")),
      parallel_mbps: round(m(par, "openssh_R")),
      rtt_p50_us: round(m(rtt, "openssh_R")),
      rtt_p99_us: round(m(rtt99, "openssh_R")),
      cpu_s_per_gib: r2(m(cpu, "openssh_R")),
    },
    openssh_default: {
      cipher: dflt.cipher,
      mbps: round(m(one, "openssh_R_default")),
      parallel_mbps: round(m(par, "openssh_R_default")),
      rtt_p50_us: round(m(rtt, "openssh_R_default")),
      rtt_p99_us: round(m(rtt99, "openssh_R_default")),
      cpu_s_per_gib: r2(m(cpu, "openssh_R_default")),
    },
    direct: {
      mbps: round(m(one, "direct")),
      parallel_mbps: round(m(par, "direct")),
      rtt_p50_us: round(m(rtt, "direct")),
      rtt_p99_us: round(m(rtt99, "direct")),
    },
    loadavg_1m: +((load0 + loadavg()[0]!) / 2).toFixed(1),
    cpus: cpus().length,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main().catch(async (err) => {
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
  await stopAll();
  process.exit(1);
});
