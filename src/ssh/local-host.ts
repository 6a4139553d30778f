/** The `local` host: commands run here with `sh -c` in their own process group. */
import { spawn as spawnChild } from "node:child_process";
import { SidecarError } from "../errors.js";
import type { ExecOptions, ExecResult, HostLease, HostProcess, SpawnOptions } from "./host.js";

function envFor(env: Record<string, string> | undefined): NodeJS.ProcessEnv {
  return env ? { ...process.env, ...env } : process.env;
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

/** A lease on this machine; `release` does nothing but is safe to call. */
export class LocalHost implements HostLease {
  readonly target = "local";
  readonly isLocal = true;

  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const child = spawnChild("sh", ["-c", command], {
        cwd: opts.cwd,
        env: envFor(opts.env),
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      let killTimer: NodeJS.Timeout | undefined;
      child.stdout.on("data", (b: Buffer) => {
        out.push(b);
        opts.onOutput?.("stdout", b);
      });
      child.stderr.on("data", (b: Buffer) => {
        err.push(b);
        opts.onOutput?.("stderr", b);
      });
      child.stdin.on("error", () => undefined);
      child.on("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          new SidecarError(
            "SSH_EXEC",
            `Cannot run \`sh -c\` here${opts.cwd ? ` in ${opts.cwd}` : ""}: ${e.message}`,
            { cause: e },
          ),
        );
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        clearTimeout(killTimer);
        resolve({
          command,
          exitCode: code,
          signal,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          durationMs: Date.now() - started,
          timedOut,
        });
      });
      if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) {
        timer = setTimeout(() => {
          timedOut = true;
          killGroup(child.pid, "SIGTERM");
          killTimer = setTimeout(() => killGroup(child.pid, "SIGKILL"), 2000);
          killTimer.unref();
        }, opts.timeoutMs);
      }
      child.stdin.end(opts.stdin ?? "");
    });
  }

  spawn(command: string, opts: SpawnOptions = {}): Promise<HostProcess> {
    return new Promise((resolve, reject) => {
      const child = spawnChild("sh", ["-c", command], {
        cwd: opts.cwd,
        env: envFor(opts.env),
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
      child.once("error", (e) =>
        reject(
          new SidecarError("SSH_EXEC", `Cannot run \`sh -c\` here: ${e.message}`, { cause: e }),
        ),
      );
      child.once("spawn", () => {
        const pid = child.pid!;
        const exited = new Promise<{ exitCode: number | null; signal: string | null }>((res) =>
          child.on("close", (exitCode, signal) => res({ exitCode, signal })),
        );
        resolve({
          stdin: child.stdin,
          stdout: child.stdout,
          stderr: child.stderr,
          pgid: Promise.resolve(pid),
          exited,
          kill: async (signal: NodeJS.Signals = "SIGTERM") => killGroup(pid, signal),
        });
      });
    });
  }

  release(): void {
    // nothing is held for `local`
  }
}
