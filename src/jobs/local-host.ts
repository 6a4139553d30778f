/**
 * The `local` pool: this machine as a Host (commands under `sh -c`, each in its own session and
 * process group). Used by the jobs service for watchdogs and cleanup on `local` pools; the SSH
 * pool serves every other target.
 */
import { spawn } from "node:child_process";
import type { ExecOptions, ExecResult, HostLease, HostPool, HostProcess, SpawnOptions } from "../ssh/host.js";

function start(command: string, opts: { env?: Record<string, string>; cwd?: string }) {
  return spawn("sh", ["-c", command], { detached: true, stdio: "pipe", env: { ...process.env, ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}) });
}

export class LocalHost implements HostLease {
  readonly target = "local";
  readonly isLocal = true;

  /** `env`: variables added to every command's environment */
  constructor(private readonly env: Record<string, string> = {}) {}

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    const child = start(command, { ...opts, env: { ...this.env, ...opts.env } });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.stdin ?? "");
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          if (child.pid) process.kill(-child.pid, "SIGKILL");
        }, opts.timeoutMs)
      : undefined;
    return new Promise((resolve) => {
      child.on("error", (err) => {
        stderr += err.message;
      });
      child.on("close", (exitCode, signal) => {
        if (timer) clearTimeout(timer);
        resolve({ command, exitCode, signal, stdout, stderr, durationMs: Date.now() - started, timedOut });
      });
    });
  }

  async spawn(command: string, opts: SpawnOptions = {}): Promise<HostProcess> {
    const child = start(command, { ...opts, env: { ...this.env, ...opts.env } });
    const exited = new Promise<{ exitCode: number | null; signal: string | null }>((resolve) => {
      child.on("close", (exitCode, signal) => resolve({ exitCode, signal }));
      child.on("error", () => resolve({ exitCode: null, signal: null }));
    });
    return {
      stdin: child.stdin,
      stdout: child.stdout,
      stderr: child.stderr,
      pgid: Promise.resolve(child.pid ?? 0),
      exited,
      kill: async (signal: NodeJS.Signals = "SIGTERM") => {
        try {
          if (child.pid) process.kill(-child.pid, signal);
        } catch {
          // already gone
        }
      },
    };
  }

  release(): void {}
}

/** A HostPool that knows only `local` (until the SSH pool is given). */
export class LocalOnlyPool implements HostPool {
  async acquire(target: string): Promise<HostLease> {
    if (target !== "local") throw new Error(`no SSH layer in this build to reach ${target}`);
    return new LocalHost();
  }
}
