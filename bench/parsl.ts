/**
 * `npm run bench -- parsl [--quick]`: no-op Parsl python apps through a remote pool (sshd on
 * loopback, the sidecar's worker tunnel, SidecarLocalProvider) and, in the same run, through a
 * plain local HighThroughputExecutor (LocalProvider). Tasks/s and median per-task latency.
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
const tasks = quick ? 300 : 2000;
const rounds = quick ? 1 : 2;
const workers = 4;
const repo = resolve(import.meta.dirname, "..");
const venvBin = join(repo, ".venv", "bin");
const python = join(venvBin, "python");
const log = (msg: string): void => void process.stderr.write(`[bench parsl] ${msg}\n`);

interface Run {
  mode: string;
  tasks: number;
  tasks_per_s: number;
  p50_ms: number;
}

async function runPython(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  const r = await execa(python, [join(repo, "bench", "parsl_bench.py"), ...args], { env, reject: false, timeout: 900_000, cwd: tmp });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  if (r.exitCode !== 0 || !line.startsWith("{")) throw new Error(`parsl_bench.py ${args[0]} failed (${String(r.exitCode)}):\n${r.stderr.slice(-3000)}`);
  return JSON.parse(line) as Run;
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
const env = { ...process.env, PATH: `${venvBin}:${process.env.PATH ?? ""}`, PARSL_SIDECAR_SSH_CONFIG: sshConfig, PARSL_SIDECAR_CONNECTION_FILE: join(runtime, "sidecar.json") };
const sidecar = spawn("node", [join(repo, "dist", "cli", "main.js"), "serve", "--runtime-dir", runtime, "--log-level", "warn"], { env, stdio: ["ignore", "ignore", "inherit"] });
try {
  for (let i = 0; i < 300 && !existsSync(join(runtime, "sidecar.json")); i++) await sleep(100);
  if (!existsSync(join(runtime, "sidecar.json"))) throw new Error("the sidecar did not start");
  const executors = join(tmp, "executors.json");
  writeFileSync(executors, JSON.stringify({ pool: { SSH_TARGET: "benchpool", PYTHON: python, RUN_DIR: join(tmp, "pool"), MAX_WORKERS_PER_NODE: workers } }, null, 2));
  const local: Run[] = [];
  const remote: Run[] = [];
  for (let i = 0; i < rounds; i++) {
    log(`round ${i + 1}/${rounds}: local HighThroughputExecutor, ${tasks} tasks, ${workers} workers`);
    local.push(await runPython(["local", String(tasks), String(workers)], env));
    log(`  ${JSON.stringify(local.at(-1))}`);
    log(`round ${i + 1}/${rounds}: remote pool over the sidecar tunnel, ${tasks} tasks, ${workers} workers`);
    remote.push(await runPython(["remote", executors, String(tasks), String(workers)], env));
    log(`  ${JSON.stringify(remote.at(-1))}`);
  }
  const best = (xs: Run[], k: "tasks_per_s" | "p50_ms", max: boolean): number => xs.map((x) => x[k]).reduce((a, b) => (max ? Math.max(a, b) : Math.min(a, b)));
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const remoteTps = best(remote, "tasks_per_s", true);
  const localTps = best(local, "tasks_per_s", true);
  const out = {
    bench: "parsl",
    tasks,
    workers,
    rounds,
    remote_tasks_per_s: r2(remoteTps),
    local_tasks_per_s: r2(localTps),
    remote_p50_ms: r2(best(remote, "p50_ms", false)),
    local_p50_ms: r2(best(local, "p50_ms", false)),
    ratio: r2(remoteTps / localTps),
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
