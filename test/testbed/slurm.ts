// A one-node Slurm cluster per test: private munged, slurm.conf, state/spool dirs and ports;
// slurmctld and slurmd started by PID, optionally inside network namespaces.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import getPort from "get-port";
import {
  killAll,
  netnsCommand,
  requireBinary,
  spawnDaemon,
  tailLog,
  type Daemon,
} from "./procs.js";
import { makeTempDir, markedPids, registerStopper, removeTempDir } from "./registry.js";
import { renderSlurmConf } from "./slurm-conf.js";

const run = promisify(execFile);

export interface SlurmPlacement {
  netns: string;
  /** The daemon's address inside `netns`. */
  addr: string;
}

export interface SlurmOptions {
  /** CPUs of the node. @default 2 */
  cpus?: number;
  /** MB of the node. @default 2000 */
  realMemory?: number;
  /**
   * Seconds a finished job stays visible to squeue/scontrol. Small keeps `sbatch --wait` fast: it
   * polls every 2 s only while 2 < MinJobAge/2 is false, else after 2, 10, 42 s. @default 4
   */
  minJobAge?: number;
  /** Run slurmctld in a namespace; clients (sbatch, squeue) must then run there too (see `run`). */
  controller?: SlurmPlacement;
  /** Run slurmd in a namespace (its jobs run there). Needs `controller` reachable from it. */
  node?: SlurmPlacement & { name?: string };
}

export interface Slurm {
  dir: string;
  confPath: string;
  /** Export these for sbatch/squeue/scancel: `{ SLURM_CONF }`. */
  env: { SLURM_CONF: string };
  clusterName: string;
  nodeName: string;
  partition: string;
  ctldPort: number;
  slurmdPort: number;
  /** Namespace where clients must run (that of slurmctld), if any. */
  clientNetns: string | undefined;
  /** `["nsenter","--net=/run/netns/NS","--"]` or `[]`: prefix for client commands. */
  commandPrefix: string[];
  logs: { slurmctld: string; slurmd: string; munged: string };
  /** Runs a Slurm client command with SLURM_CONF set (in `clientNetns` if any). */
  run(
    cmd: string[],
    opts?: { timeoutMs?: number; cwd?: string },
  ): Promise<{ stdout: string; stderr: string }>;
  /** Waits until the node is idle (no jobs, ready). */
  waitIdle(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

const BINARIES = [
  "/usr/sbin/munged",
  "/usr/sbin/mungekey",
  "/usr/sbin/slurmctld",
  "/usr/sbin/slurmd",
  "/usr/bin/sbatch",
];

/** Starts munged, slurmctld and slurmd, and waits until the node is idle. */
export async function startSlurm(opts: SlurmOptions = {}): Promise<Slurm> {
  BINARIES.forEach(requireBinary);
  const dir = makeTempDir("slurm");
  for (const sub of ["munge", "state", "spool", "log"])
    mkdirSync(join(dir, sub), { recursive: true, mode: 0o755 });
  const nodeName = opts.node?.name ?? (opts.node ? "compute" : "localhost");
  // Ports: in a fresh namespace any port is free; on the host ask get-port.
  const ctldPort = await getPort();
  const slurmdPort = await getPort({ exclude: [ctldPort] });
  const confPath = join(dir, "slurm.conf");
  const mungeSocket = join(dir, "munge", "munge.socket");
  const clientNetns = opts.controller?.netns;
  const daemons: Daemon[] = [];
  const s: Slurm = {
    dir,
    confPath,
    env: { SLURM_CONF: confPath },
    nodeName,
    partition: "debug",
    ctldPort,
    slurmdPort,
    clusterName: `psc${randomBytes(3).toString("hex")}`,
    clientNetns,
    commandPrefix: clientNetns ? netnsCommand(clientNetns, "nsenter") : [],
    logs: {
      slurmctld: join(dir, "log", "slurmctld.log"),
      slurmd: join(dir, "log", "slurmd.log"),
      munged: join(dir, "log", "munged.log"),
    },
    run: async (cmd, o = {}) => {
      const full = [...s.commandPrefix, ...cmd];
      return run(full[0]!, full.slice(1), {
        env: { ...process.env, ...s.env },
        timeout: o.timeoutMs ?? 30000,
        cwd: o.cwd,
      });
    },
    waitIdle: async (timeoutMs = 30000) => {
      const deadline = Date.now() + timeoutMs;
      let last = "";
      while (Date.now() < deadline) {
        for (const d of daemons) {
          if (d.hasExited()) throw new Error(`${d.name} exited:\n${tailLog(d.logPath)}`);
        }
        last = await s
          .run(["sinfo", "-h", "-N", "-n", nodeName, "-o", "%T"], { timeoutMs: 10000 })
          .then(
            (r) => r.stdout.trim(),
            (e: Error) => e.message,
          );
        if (last === "idle") return;
        await sleep(200);
      }
      throw new Error(
        `Slurm node ${nodeName} not idle after ${timeoutMs} ms (last: ${last})\n${tailLog(s.logs.slurmctld)}\n${tailLog(s.logs.slurmd)}`,
      );
    },
    stop: async () => {
      unregister();
      await s.run(["scancel", "--full", "-u", "root"], { timeoutMs: 5000 }).catch(() => undefined);
      for (const d of [...daemons].reverse()) await d.stop();
      // slurmstepd daemonizes away from slurmd; find it (and job processes) by environment.
      killAll([...markedPids(dir), ...markedPids(confPath, "SLURM_CONF")]);
      removeTempDir(dir);
    },
  };
  const unregister = registerStopper(() => s.stop());

  writeFileSync(
    confPath,
    renderSlurmConf({
      dir,
      clusterName: s.clusterName,
      nodeName,
      ctldPort,
      slurmdPort,
      mungeSocket,
      cpus: opts.cpus ?? 2,
      realMemory: opts.realMemory ?? 2000,
      minJobAge: opts.minJobAge ?? 4,
      ctldAddr: opts.controller?.addr,
      nodeAddr: opts.node?.addr,
    }),
  );
  const env = { ...process.env, SLURM_CONF: confPath };
  const common = { env, marker: dir };
  try {
    const key = join(dir, "munge", "munge.key");
    await run("/usr/sbin/mungekey", ["--create", "--keyfile", key]);
    daemons.push(
      spawnDaemon(
        "/usr/sbin/munged",
        [
          "-F",
          "--force",
          `--key-file=${key}`,
          `--socket=${mungeSocket}`,
          `--pid-file=${join(dir, "munge", "munged.pid")}`,
          `--log-file=${s.logs.munged}`,
          `--seed-file=${join(dir, "munge", "munged.seed")}`,
        ],
        { ...common, name: "munged", logPath: join(dir, "log", "munged.out") },
      ),
    );
    await waitForFile(mungeSocket, daemons[0]!);
    daemons.push(
      spawnDaemon("/usr/sbin/slurmctld", ["-D", "-i"], {
        ...common,
        name: "slurmctld",
        logPath: join(dir, "log", "slurmctld.out"),
        netns: opts.controller?.netns,
        netnsVia: "nsenter",
      }),
    );
    daemons.push(
      spawnDaemon("/usr/sbin/slurmd", ["-D", "-N", nodeName], {
        ...common,
        name: "slurmd",
        logPath: join(dir, "log", "slurmd.out"),
        netns: opts.node?.netns,
        netnsVia: "nsenter",
      }),
    );
    await s.waitIdle(30000);
  } catch (err) {
    await s.stop();
    throw err;
  }
  return s;
}

async function waitForFile(path: string, daemon: Daemon, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (daemon.hasExited()) throw new Error(`${daemon.name} exited:\n${tailLog(daemon.logPath)}`);
    if (Date.now() > deadline) throw new Error(`${daemon.name}: ${path} did not appear`);
    await sleep(25);
  }
}
