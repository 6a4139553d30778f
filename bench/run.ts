/**
 * `npm run bench -- run [--quick]`: the wall time of `parsl-sidecar run -- true` (start the
 * sidecar, write the job record, run, tear down; the built CLI run with node) next to plain
 * `true` spawned the same way, medians of alternating runs; and the time from `kill` to nothing
 * left of a job on a loopback pool over SSH (workers there and COMMAND here, all ending on SIGTERM).
 * Last line: {"bench":"run","run_true_ms","plain_true_ms","overhead_ms","kill_clean_s",...}
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { collectJobProcesses } from "../src/jobs/tree.js";
import { readProc } from "../src/jobs/proc.js";
import { writeSshConfig } from "../test/testbed/ssh-config.js";
import { startSshd } from "../test/testbed/sshd.js";

const quick = process.argv.includes("--quick");
const runs = quick ? 9 : 31;
const kills = quick ? 3 : 7;
const repo = resolve(import.meta.dirname, "..");
const cli = join(repo, "dist", "bin", "parsl-sidecar.js");
const fixtures = join(repo, "test", "fixtures");
const log = (msg: string): void => void process.stderr.write(`[bench run] ${msg}\n`);
if (!existsSync(cli)) throw new Error(`${cli} is missing: npm run build`);

const tmp = mkdtempSync(join(tmpdir(), "psc-bench-run-"));
const baseEnv: NodeJS.ProcessEnv = {
  ...process.env,
  PARSL_SIDECAR_STATE_DIR: join(tmp, "state"),
  PARSL_SIDECAR_RUNTIME_DIR: join(tmp, "rt"),
  PARSL_SIDECAR_CLI: `${process.execPath} ${cli}`,
  PARSL_SIDECAR_JOB: undefined,
  PARSL_SIDECAR_CONNECTION_FILE: undefined,
};

function wall(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ms: number; code: number | null }> {
  const t0 = performance.now();
  return new Promise((res, rej) => {
    const c = spawn(file, args, { env, stdio: "ignore" });
    c.on("error", rej);
    c.on("exit", (code) => res({ ms: performance.now() - t0, code }));
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const alive = (pid: number): boolean => {
  const p = readProc(pid);
  return p !== undefined && p.state !== "Z" && p.state !== "X";
};
const pids = (file: string): number[] =>
  existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number) : [];

try {
  // 1. run -- true next to true, alternating, after one warm-up of each
  await wall(process.execPath, [cli, "run", "-q", "--", "true"], baseEnv);
  await wall("true", [], baseEnv);
  const runMs: number[] = [];
  const plainMs: number[] = [];
  const nodeMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await wall(process.execPath, [cli, "run", "-q", "--", "true"], baseEnv);
    if (r.code !== 0) throw new Error(`run -- true exited ${r.code}`);
    runMs.push(r.ms);
    plainMs.push((await wall("true", [], baseEnv)).ms);
    nodeMs.push((await wall(process.execPath, ["-e", "0"], baseEnv)).ms);
  }
  log(
    `run -- true: median ${round(median(runMs))} ms; true: ${round(median(plainMs))} ms; node -e 0: ${round(median(nodeMs))} ms (${runs} runs each)`,
  );

  // 2. kill -> nothing left, on a loopback pool over SSH
  const sshd = await startSshd();
  const cleanS: number[] = [];
  const killCliS: number[] = [];
  try {
    const config = writeSshConfig(
      sshd.dir,
      [
        {
          host: "benchpool",
          hostName: sshd.host,
          port: sshd.port,
          user: sshd.user,
          identityFile: sshd.keyPath,
          userKnownHostsFile: sshd.knownHostsPath,
          extra: { StrictHostKeyChecking: "yes", IdentitiesOnly: "yes", IdentityAgent: "none" },
        },
      ],
      "bench_ssh_config",
    );
    const env = {
      ...baseEnv,
      PARSL_SIDECAR_SSH_CONFIG: config,
      POOL_TARGET: "benchpool",
      STUBBORN: "0",
    };
    for (let i = 0; i < kills; i++) {
      const job = `bench-kill-${i}`;
      const poolFile = join(tmp, `pool-${i}`);
      const cmdFile = join(tmp, `cmd-${i}`);
      const run = spawn(
        process.execPath,
        [
          cli,
          "run",
          "-q",
          "--job",
          job,
          "--",
          join(fixtures, "job-with-pool.sh"),
          poolFile,
          cmdFile,
        ],
        { env, stdio: "ignore" },
      );
      const ran = new Promise<void>((r) => run.on("exit", () => r()));
      for (let t = 0; !existsSync(`${cmdFile}.ready`); t++) {
        if (t > 600) throw new Error("the benchmark job did not start");
        await sleep(50);
      }
      const all = [...pids(poolFile), ...pids(cmdFile)];
      const t0 = performance.now();
      const k = await wall(process.execPath, [cli, "kill", job], env);
      const tk = performance.now();
      if (k.code !== 0) throw new Error(`kill exited ${k.code}`);
      while (
        all.some(alive) ||
        collectJobProcesses({ jobId: job, pgids: [], known: [], exclude: [] }).length > 0
      ) {
        if (performance.now() - t0 > 60_000)
          throw new Error("the job was not cleaned up within 60 s");
        await sleep(5);
      }
      cleanS.push((performance.now() - t0) / 1000);
      killCliS.push((tk - t0) / 1000);
      await ran;
    }
  } finally {
    await sshd.stop();
  }
  log(
    `kill -> nothing left on a loopback pool: median ${round(median(cleanS), 2)} s (the kill command itself ${round(median(killCliS), 2)} s; ${kills} jobs)`,
  );

  const result = {
    bench: "run",
    run_true_ms: round(median(runMs)),
    plain_true_ms: round(median(plainMs), 2),
    overhead_ms: round(median(runMs) - median(plainMs)),
    node_startup_ms: round(median(nodeMs)),
    kill_clean_s: round(median(cleanS), 2),
    kill_command_s: round(median(killCliS), 2),
    runs,
    kills,
    quick,
    goals: { overhead_ms: 300, kill_clean_s: 2 },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
