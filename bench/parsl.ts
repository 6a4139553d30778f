/**
 * `npm run bench -- parsl [--quick]`: no-op Parsl python apps through a remote pool (sshd on
 * loopback, the sidecar's worker tunnel, SidecarLocalProvider) and, in the same run, through a
 * plain local HighThroughputExecutor (LocalProvider), both in one DataFlowKernel with batches
 * alternating between them so that both see the same machine load. Tasks/s and median latency.
 * Last line: {"bench":"parsl","remote_tasks_per_s","local_tasks_per_s","remote_p50_ms","local_p50_ms","ratio",...}
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { startSshd } from "../test/testbed/sshd.js";

const quick = process.argv.includes("--quick");
const tasks = quick ? 400 : 2000;
const rounds = quick ? 2 : 4;
const workers = 4;
const repo = resolve(import.meta.dirname, "..");
const venvBin = join(repo, ".venv", "bin");
const python = join(venvBin, "python");
const log = (msg: string): void => void process.stderr.write(`[bench parsl] ${msg}\n`);

interface Result {
  tasks: number;
  remote_tasks_per_s: number;
  local_tasks_per_s: number;
  remote_p50_ms: number;
  local_p50_ms: number;
}

async function runPython(args: string[], env: NodeJS.ProcessEnv): Promise<Result> {
  const r = await execa(python, [join(repo, "bench", "parsl_bench.py"), ...args], {
    env,
    reject: false,
    timeout: 900_000,
    cwd: tmp,
  });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.exitCode !== 0 || !line.startsWith("{"))
    throw new Error(`parsl_bench.py failed (${String(r.exitCode)}):\n${r.stderr.slice(-3000)}`);
  return JSON.parse(line) as Result;
}

const tmp = mkdtempSync(join(tmpdir(), "psc-bench-parsl-"));
const sshd = await startSshd();
const runtime = mkdtempSync("/tmp/psc-bench-rt-");
const sshConfig = join(tmp, "ssh_config");
writeFileSync(
  sshConfig,
  `Host benchpool\n  HostName ${sshd.host}\n  Port ${sshd.port}\n  User ${sshd.user}\n  IdentityFile ${sshd.keyPath}\n  UserKnownHostsFile ${sshd.knownHostsPath}\n  StrictHostKeyChecking yes\n`,
  { mode: 0o600 },
);
const env = {
  ...process.env,
  PATH: `${venvBin}:${process.env.PATH ?? ""}`,
  PARSL_SIDECAR_SSH_CONFIG: sshConfig,
  PARSL_SIDECAR_CONNECTION_FILE: join(runtime, "sidecar.json"),
};
const sidecar = spawn(
  "node",
  [
    ...(process.env.PSC_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.PSC_PROF}`] : []),
    join(repo, "dist", "bin", "parsl-sidecar.js"),
    "serve",
    "--runtime-dir",
    runtime,
    "--log-level",
    "warn",
  ],
  { env, stdio: ["ignore", "ignore", "inherit"] },
);
try {
  for (let i = 0; i < 300 && !existsSync(join(runtime, "sidecar.json")); i++) await sleep(100);
  if (!existsSync(join(runtime, "sidecar.json"))) throw new Error("the sidecar did not start");
  const executors = join(tmp, "executors.json");
  writeFileSync(
    executors,
    JSON.stringify(
      {
        pool: {
          SSH_TARGET: "benchpool",
          PYTHON: python,
          RUN_DIR: join(tmp, "pool"),
          MAX_WORKERS_PER_NODE: workers,
        },
      },
      null,
      2,
    ),
  );
  log(
    `${tasks} no-op apps in ${rounds} alternating batches per executor, ${workers} workers each: remote pool (sshd on loopback, tunnel, SidecarLocalProvider) and local HighThroughputExecutor (LocalProvider), one DataFlowKernel`,
  );
  const res = await runPython([executors, String(tasks), String(workers), String(rounds)], env);
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const out = {
    bench: "parsl",
    tasks: res.tasks,
    workers,
    rounds,
    remote_tasks_per_s: r2(res.remote_tasks_per_s),
    local_tasks_per_s: r2(res.local_tasks_per_s),
    remote_p50_ms: r2(res.remote_p50_ms),
    local_p50_ms: r2(res.local_p50_ms),
    ratio: r2(res.remote_tasks_per_s / res.local_tasks_per_s),
    quick,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  sidecar.kill("SIGTERM");
  await new Promise((r) => sidecar.once("exit", r));
  await sshd.stop();
  rmSync(tmp, { recursive: true, force: true });
  rmSync(runtime, { recursive: true, force: true });
}
