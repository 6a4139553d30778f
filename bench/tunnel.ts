/**
 * Tunnel throughput, all against one private sshd in one run: the sidecar's reverse tunnel,
 * OpenSSH `ssh -N -R` (same key, same cipher list; and with its default ciphers), and direct
 * TCP, for one stream and for 32 parallel streams; plus the time to open a tunnel and to recover
 * after sshd's connections are killed. `--quick`: 128 MiB instead of 1 GiB, one repetition.
 * MB/s is 10^6 bytes per second. The last line of stdout is one JSON object.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import getPort from "get-port";
import { EventBus } from "../src/events.js";
import { cipherList } from "../src/ssh/ssh2/connect.js";
import { SshConnections } from "../src/ssh/connections.js";
import { TunnelManager } from "../src/tunnels/manager.js";
import { stopAll } from "../test/testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../test/testbed/ssh-config.js";
import { startSshd, type Sshd } from "../test/testbed/sshd.js";
import { echoAll, echoServer, pattern } from "../test/tunnels/helpers.js";

const quick = process.argv.includes("--quick");
const TOTAL = quick ? 128 << 20 : 1 << 30;
const REPS = quick ? 1 : 3;
const PINGS = quick ? 1000 : 3000;
const PARALLEL = 32;
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

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

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
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

async function main(): Promise<void> {
  const sshd = await startSshd({ extraConfig: ["MaxStartups 100"] });
  const traffic = new Traffic(
    spawn("node_modules/.bin/tsx", ["bench/lib/traffic.ts"], {
      stdio: ["pipe", "pipe", "inherit"],
    }),
  );
  const sink = Number((await traffic.next()).sink);
  const configPath = writeSshConfig(
    sshd.dir,
    [
      sshdEntry("pool", sshd, {
        extra: { IdentitiesOnly: "yes", IdentityAgent: "none", StrictHostKeyChecking: "yes" },
      }),
    ],
    "bench_config",
  );
  const newPool = (): SshConnections =>
    new SshConnections({
      configPath,
      events: new EventBus(),
      reconnect: { initialMs: 50, maxMs: 1000 },
    });
  // open time from cold: a new SSH connection, the forward, and the end-to-end check
  const opens: number[] = [];
  for (let i = 0; i < 3; i++) {
    const pool = newPool();
    const tunnels = new TunnelManager({ hosts: pool });
    const t0 = performance.now();
    await tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: sink,
      bind: "loopback",
      owner: "bench",
    });
    opens.push(performance.now() - t0);
    await tunnels.closeAll();
    await pool.close();
  }
  const pool2 = newPool();
  const tunnels2 = new TunnelManager({ hosts: pool2 });
  const tun = await tunnels2.open({
    target: "pool",
    kind: "reverse",
    local_port: sink,
    bind: "loopback",
    owner: "bench",
  });
  const sidecarCipher = pool2.list()[0]?.cipher ?? "unknown";
  // the same through a durable relay (python3 on the pool, framed and acknowledged streams)
  const durable = await tunnels2.open({
    target: "pool",
    kind: "reverse",
    local_port: sink,
    bind: "loopback",
    durable: true,
    owner: "bench",
  });
  const relayPid = durable.relay!.pgid!;
  const same = await opensshTunnel(sshd, sink, ["-o", `Ciphers=${cipherList().join(",")}`]);
  const dflt = await opensshTunnel(sshd, sink, []);

  // [name, port to send to, pid whose CPU time is the tunnel's cost]
  const targets: Array<[string, number, number]> = [
    ["sidecar", tun.dial_port, process.pid],
    ["sidecar_durable", durable.dial_port, process.pid],
    ["openssh", same.port, same.proc.pid!],
    ["openssh_default", dflt.port, dflt.proc.pid!],
    ["direct", sink, 0],
  ];
  // warm up every path (JIT, TCP windows) before measuring
  for (const [, port] of targets) await traffic.run(port, 1, 32 << 20);
  const one: Record<string, number[]> = {};
  const par: Record<string, number[]> = {};
  const cpu: Record<string, number[]> = {};
  const rtt: Record<string, number[]> = {};
  const rtt99: Record<string, number[]> = {};
  const load0 = loadavg()[0]!;
  for (let rep = 0; rep < REPS; rep++) {
    for (const [name, port, pid] of targets) {
      const c0 = pid ? cpuSeconds(pid) : 0;
      const r0 = name === "sidecar_durable" ? cpuSeconds(relayPid) : 0;
      (one[name] ??= []).push(await traffic.run(port, 1, TOTAL));
      (par[name] ??= []).push(await traffic.run(port, PARALLEL, TOTAL / PARALLEL));
      if (pid) (cpu[name] ??= []).push((cpuSeconds(pid) - c0) / ((2 * TOTAL) / 2 ** 30));
      if (r0) (cpu.relay ??= []).push((cpuSeconds(relayPid) - r0) / ((2 * TOTAL) / 2 ** 30));
      // what HTEX's small messages feel: one 64-byte message there and back at a time
      const lat = await traffic.ping(port, PINGS);
      (rtt[name] ??= []).push(lat.p50);
      (rtt99[name] ??= []).push(lat.p99);
      log(
        `rep ${rep + 1} ${name.padEnd(16)} round trip p50 ${lat.p50.toFixed(0)} µs p99 ${lat.p99.toFixed(0)} µs`,
      );
      log(
        `rep ${rep + 1} ${name.padEnd(16)} 1 stream ${one[name]!.at(-1)!.toFixed(0)} MB/s   ${PARALLEL} streams ${par[name]!.at(-1)!.toFixed(0)} MB/s${pid ? `   tunnel CPU ${cpu[name]!.at(-1)!.toFixed(2)} s/GiB` : ""}`,
      );
    }
  }
  same.proc.kill();
  dflt.proc.kill();

  await tunnels2.close(durable.id);

  // a stream through a durable tunnel across a drop: how long it stalls, and whether every byte
  // came back (an echo here; only sshd's processes are killed, the relay lives on as on a pool)
  const echo = await echoServer();
  const dt = await tunnels2.open({
    target: "pool",
    kind: "reverse",
    local_port: echo.port,
    bind: "loopback",
    durable: true,
    owner: "bench",
  });
  const stalls: number[] = [];
  let exact = true;
  for (let i = 0; i < 3; i++) {
    const r = await streamAcrossDrop(dt.dial_port, () => sshd.dropConnections());
    stalls.push(r.stallMs);
    exact &&= r.exact;
    // the next drop only after the tunnel is open again
    const deadline = Date.now() + 60_000;
    while (tunnels2.list().find((t) => t.id === dt.id)!.state !== "open" && Date.now() < deadline)
      await sleep(20);
  }
  const dtRec = tunnels2.list().find((t) => t.id === dt.id)!;
  await tunnels2.close(dt.id);
  await echo.close();

  // recovery: kill sshd's connections; time until the tunnel is re-forwarded and checked end to end
  const recovers: number[] = [];
  const flows: number[] = [];
  for (let i = 0; i < 3; i++) {
    const before = tunnels2.list()[0]!.reconnects;
    await sshd.killConnections();
    const t0 = performance.now();
    let flowAt = 0;
    let noticed = false;
    for (;;) {
      const r = tunnels2.list()[0]!;
      noticed ||= r.state === "reconnecting" || r.reconnects > before;
      // new connections flow once sshd listens again for the new session (before the check ends)
      if (noticed && !flowAt && (await canConnect(r.dial_port))) flowAt = performance.now();
      if (r.reconnects > before && r.state === "open") break;
      if (performance.now() - t0 > 60_000) throw new Error("the tunnel did not recover in 60 s");
      await sleep(5);
    }
    recovers.push(performance.now() - t0);
    flows.push((flowAt || performance.now()) - t0);
    await traffic.run(tunnels2.list()[0]!.dial_port, 1, 1 << 20);
  }

  await tunnels2.closeAll();
  await pool2.close();
  traffic.child.stdin!.end();
  await stopAll();

  const round = (x: number): number => Math.round(x);
  const result = {
    bench: "tunnel",
    quick,
    bytes: TOTAL,
    parallel_streams: PARALLEL,
    reps: REPS,
    sidecar_mbps: round(median(one.sidecar!)),
    durable_mbps: round(median(one.sidecar_durable!)),
    durable_parallel_mbps: round(median(par.sidecar_durable!)),
    durable_ratio_vs_sidecar: +(median(one.sidecar_durable!) / median(one.sidecar!)).toFixed(2),
    durable_ratio_vs_openssh: +(median(one.sidecar_durable!) / median(one.openssh!)).toFixed(2),
    durable_cpu_s_per_gib: +median(cpu.sidecar_durable!).toFixed(2),
    durable_relay_cpu_s_per_gib: +median(cpu.relay!).toFixed(2),
    durable_drop_stall_ms: round(median(stalls)),
    durable_drop_bytes_exact: exact,
    durable_resumed_connections: dtRec.resumed_connections,
    openssh_mbps: round(median(one.openssh!)),
    openssh_default_mbps: round(median(one.openssh_default!)),
    direct_mbps: round(median(one.direct!)),
    sidecar_parallel_mbps: round(median(par.sidecar!)),
    openssh_parallel_mbps: round(median(par.openssh!)),
    openssh_default_parallel_mbps: round(median(par.openssh_default!)),
    direct_parallel_mbps: round(median(par.direct!)),
    ratio_vs_openssh: +(median(one.sidecar!) / median(one.openssh!)).toFixed(2),
    ratio_vs_openssh_parallel: +(median(par.sidecar!) / median(par.openssh!)).toFixed(2),
    ratio_vs_openssh_default: +(median(one.sidecar!) / median(one.openssh_default!)).toFixed(2),
    ratio_vs_direct: +(median(one.sidecar!) / median(one.direct!)).toFixed(2),
    sidecar_cipher: sidecarCipher,
    openssh_cipher: same.cipher,
    openssh_default_cipher: dflt.cipher,
    sidecar_cpu_s_per_gib: +median(cpu.sidecar!).toFixed(2),
    openssh_cpu_s_per_gib: +median(cpu.openssh!).toFixed(2),
    openssh_default_cpu_s_per_gib: +median(cpu.openssh_default!).toFixed(2),
    loadavg_1m: +((load0 + loadavg()[0]!) / 2).toFixed(1),
    cpus: (await import("node:os")).cpus().length,
    open_ms: round(median(opens)),
    recover_ms: round(median(recovers)),
    recover_flow_ms: round(median(flows)),
    // 64-byte round trips, one at a time (µs): what a worker's request and its reply cross
    rtt_p50_us: Object.fromEntries(targets.map(([name]) => [name, round(median(rtt[name]!))])),
    rtt_p99_us: Object.fromEntries(targets.map(([name]) => [name, round(median(rtt99[name]!))])),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

await main().catch(async (err) => {
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
  await stopAll();
  process.exit(1);
});
