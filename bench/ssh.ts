/**
 * `npm run bench -- ssh [--quick] [--transport ssh2|openssh]`: a short command (`true`) through
 * a ready connection, one at a time, per transport: the sidecar's exec as services use it (the
 * process-group wrapper; session.sh too on openssh) and, to show where the time goes, a bare
 * session of the link. Peer, same sshd and run: `ssh -S SOCKET HOST true` through a
 * ControlMaster the bench opens itself. Blocks of each alternate; p50/p99 in ms.
 * Last line: {"bench":"ssh","transports":{NAME:{"p50_ms","p99_ms","link_p50_ms",...,"ratio_p50"}},"peer":{...}}
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { EventBus } from "../src/events.js";
import { type SshLease, SshConnections } from "../src/ssh/connections.js";
import type { TransportKind } from "../src/ssh/link.js";
import { stopAll } from "../test/testbed/registry.js";
import { runBench } from "./lib/run.js";
import { sshdEntry, writeSshConfig } from "../test/testbed/ssh-config.js";
import { startSshd } from "../test/testbed/sshd.js";
import { benchTransports, median, quantile } from "./lib/transports.js";

const quick = process.argv.includes("--quick");
const N = quick ? 100 : 500;
const BLOCK = 20;
const transports = benchTransports();
const log = (s: string): void => void process.stderr.write(`[bench ssh] ${s}\n`);
const r2 = (x: number): number => Math.round(x * 100) / 100;

function run(file: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(file, args, { stdio: "ignore" });
    c.on("error", reject);
    c.on("exit", (code) =>
      code === 0 ? resolve(code) : reject(new Error(`${file} exited ${code}`)),
    );
  });
}

async function main(): Promise<Record<string, unknown>> {
  const tmp = mkdtempSync(join(tmpdir(), "psc-bench-ssh-"));
  // an empty HOME on the pool side: root's ~/.bashrc here (pyenv) would be most of every
  // session, the same on both sides; the bench is about the transports
  const home = join(tmp, "home");
  mkdirSync(home);
  const sshd = await startSshd({ extraConfig: ["MaxStartups 100", `SetEnv HOME=${home}`] });
  const configPath = writeSshConfig(tmp, [
    sshdEntry("pool", sshd, {
      extra: {
        IdentitiesOnly: "yes",
        IdentityAgent: "none",
        StrictHostKeyChecking: "yes",
        BatchMode: "yes",
      },
    }),
  ]);
  const pools: Array<{ t: TransportKind; pool: SshConnections; lease: SshLease }> = [];
  for (const t of transports) {
    const pool = new SshConnections({
      configPath,
      events: new EventBus(),
      transport: t,
      runtimeDir: mkdtempSync(join(tmpdir(), `psc-bench-ssh-${t}-`)),
    });
    const lease = (await pool.acquire("pool", "bench")) as SshLease;
    await lease.connection.ready(30_000);
    pools.push({ t, pool, lease });
  }
  // the peer: a ControlMaster of our own, with the same config and host
  const sock = join(tmp, "peer.sock");
  const base = ["-F", configPath, "-S", sock];
  spawnSync("ssh", [...base, "-M", "-N", "-f", "-o", "ControlPersist=yes", "pool"], {
    stdio: "inherit",
  });
  const peerArgs = [...base, "-o", "ControlMaster=no", "pool", "true"];

  const methods: Record<string, () => Promise<unknown>> = {
    peer: () => run("ssh", peerArgs),
  };
  for (const { t, lease } of pools) {
    methods[t] = async () => {
      const r = await lease.exec("true");
      if (r.exitCode !== 0) throw new Error(`${t}: true exited ${r.exitCode}: ${r.stderr}`);
    };
    // the link's own session: no process-group wrapper, nothing collected
    methods[`${t}_link`] = async () => {
      const { channel, release } = await lease.connection.exec("true", 30_000);
      channel.resume();
      channel.stderr.resume();
      await new Promise((r) => channel.once("close", r));
      release();
    };
  }
  const names = Object.keys(methods);
  for (const n of names) for (let i = 0; i < 5; i++) await methods[n]!(); // warm up
  const ms: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const load0 = loadavg()[0]!;
  for (let done = 0; done < N; done += BLOCK) {
    const order = [...names];
    for (let k = 0; k < (done / BLOCK) % order.length; k++) order.push(order.shift()!);
    for (const n of order)
      for (let i = 0; i < BLOCK; i++) {
        const t0 = performance.now();
        await methods[n]!();
        ms[n]!.push(performance.now() - t0);
      }
  }
  for (const n of names)
    log(
      `${n.padEnd(14)} p50 ${median(ms[n]!).toFixed(2)} ms  p99 ${quantile(ms[n]!, 0.99).toFixed(2)} ms`,
    );

  const ciphers = Object.fromEntries(
    pools.map(({ t, lease }) => [t, lease.connection.info().cipher]),
  );
  spawnSync("ssh", [...base, "-O", "exit", "pool"], { stdio: "ignore" });
  for (const { pool, lease } of pools) {
    lease.release();
    await pool.close();
  }
  await stopAll();
  rmSync(tmp, { recursive: true, force: true });
  const peerP50 = median(ms.peer!);
  return {
    bench: "ssh",
    quick,
    runs: N,
    command: "true",
    transports: Object.fromEntries(
      transports.map((t) => [
        t,
        {
          p50_ms: r2(median(ms[t]!)),
          p99_ms: r2(quantile(ms[t]!, 0.99)),
          link_p50_ms: r2(median(ms[`${t}_link`]!)),
          link_p99_ms: r2(quantile(ms[`${t}_link`]!, 0.99)),
          ratio_p50: r2(median(ms[t]!) / peerP50),
          link_ratio_p50: r2(median(ms[`${t}_link`]!) / peerP50),
          cipher: ciphers[t],
        },
      ]),
    ),
    peer: {
      what: "ssh -S SOCKET pool true, through a ControlMaster the bench opened",
      p50_ms: r2(peerP50),
      p99_ms: r2(quantile(ms.peer!, 0.99)),
    },
    machine: { cpus: cpus().length, loadavg_1m: r2((load0 + loadavg()[0]!) / 2) },
  };
}

runBench(main, log);
