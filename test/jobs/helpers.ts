/** Helpers for the jobs tests: the built CLI run as real processes, temp state dirs, /proc checks. */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { collectJobProcesses } from "../../src/jobs/tree.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const CLI = join(ROOT, "dist/bin/parsl-sidecar.js");
export const FIXTURES = join(ROOT, "test/fixtures");

if (!existsSync(CLI))
  throw new Error(
    `${CLI} is missing: run \`npm run build\` (scripts/setup.sh does) before these tests`,
  );

export interface Sandbox {
  dir: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

/** A private state and runtime directory, so tests never see the user's jobs. */
export function sandbox(extra: NodeJS.ProcessEnv = {}): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), "jobs-test-"));
  const env = {
    ...process.env,
    PARSL_SIDECAR_STATE_DIR: join(dir, "state"),
    PARSL_SIDECAR_RUNTIME_DIR: join(dir, "run"),
    PARSL_SIDECAR_CLI: `${process.execPath} ${CLI}`,
    PARSL_SIDECAR_JOB: undefined,
    PARSL_SIDECAR_CONNECTION_FILE: undefined,
    ...extra,
  };
  return { dir, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Start the CLI; `done` resolves when it exited and its output closed, `exited` when the process
 * itself is gone (processes it left may hold its output open).
 */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv,
): {
  child: ChildProcess;
  done: Promise<CliResult>;
  exited: Promise<void>;
  output: () => { stdout: string; stderr: string };
} {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const done = new Promise<CliResult>((res) =>
    child.on("close", (code, signal) => res({ code, signal, stdout, stderr })),
  );
  const exited = new Promise<void>((res) => child.on("exit", () => res()));
  return { child, done, exited, output: () => ({ stdout, stderr }) };
}

export function cli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return startCli(args, env).done;
}

export async function waitFor(
  what: string,
  check: () => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function pidsFrom(file: string): number[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number);
}

export { alive } from "../testbed/procs.js";

/**
 * `run [flags] --job JOB -- stubborn-tree.sh PIDFILE` (test/fixtures: a tree that daemonizes,
 * hides from the marker and ignores SIGTERM), once it has started everything. Its pids are also
 * pushed onto `track`, for the test's reap().
 */
export async function startStubborn(
  b: Sandbox,
  job: string,
  track: number[],
  flags: string[] = [],
  pidFile = join(b.dir, "pids"),
): Promise<{ run: ReturnType<typeof startCli>; pids: number[]; pidFile: string }> {
  const run = startCli(
    ["run", "--job", job, ...flags, "--", join(FIXTURES, "stubborn-tree.sh"), pidFile],
    b.env,
  );
  await waitFor("the fixture to start everything", () => existsSync(`${pidFile}.ready`));
  const pids = pidsFrom(pidFile);
  track.push(...pids);
  return { run, pids, pidFile };
}

/** Live processes carrying the job's marker or in its group, anywhere on this machine. */
export function jobProcesses(jobId: string, pgids: number[] = []): number[] {
  return collectJobProcesses({ jobId, pgids, known: [], exclude: [] }).map((p) => p.pid);
}

/** Kill whatever a failed test left behind. */
export function reap(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}
