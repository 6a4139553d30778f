/**
 * Run a command in its own process group (a new session), forward SIGINT/SIGTERM/SIGHUP to the
 * whole group, and map its end to an exit code: its own code, 128+signal when killed, 127 when
 * it does not exist, 126 when it cannot be executed.
 */
import { constants } from "node:os";
import { spawn } from "node:child_process";
import { EXIT } from "../exit-codes.js";

export interface SuperviseOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** called with the child's pid (also its process-group id) once it started */
  onStart?: (pid: number) => void;
  /** called after a signal received by this process was forwarded to the group */
  onSignal?: (signal: NodeJS.Signals) => void;
  /** forward SIGINT/SIGTERM/SIGHUP received by this process to the group (default true) */
  forwardSignals?: boolean;
}

export interface SuperviseResult {
  exitCode: number;
  signal: NodeJS.Signals | undefined;
  /** set when the command could not be started */
  error: string | undefined;
  durationMs: number;
}

export function signalExitCode(signal: NodeJS.Signals): number {
  return EXIT.SIGNAL_BASE + (constants.signals[signal] ?? 0);
}

/** Send a signal to a whole process group, ignoring one that is already gone. */
export function killGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

export async function supervise(
  command: string[],
  opts: SuperviseOptions = {},
): Promise<SuperviseResult> {
  const started = Date.now();
  const [file, ...args] = command;
  // child_process directly: execa costs ~100-300 ms of start-up, the whole budget of `run -- true`
  const child = spawn(file!, args, {
    stdio: "inherit",
    detached: true, // a new session and process group, so that kill reaches every descendant that stays in it
    env: opts.env ?? process.env,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const forward = (sig: NodeJS.Signals): void => {
    if (child.pid) killGroup(child.pid, sig);
    opts.onSignal?.(sig);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  if (opts.forwardSignals !== false) for (const s of signals) process.on(s, forward);
  if (child.pid) opts.onStart?.(child.pid);
  try {
    return await new Promise<SuperviseResult>((resolve) => {
      child.once("error", (err: NodeJS.ErrnoException) => {
        const durationMs = Date.now() - started;
        if (err.code === "ENOENT")
          resolve({
            exitCode: EXIT.COMMAND_NOT_FOUND,
            signal: undefined,
            error: `command not found: ${file}`,
            durationMs,
          });
        else
          resolve({
            exitCode: EXIT.CANNOT_EXECUTE,
            signal: undefined,
            error: `cannot execute ${file}: ${err.message}`,
            durationMs,
          });
      });
      child.once("exit", (code, signal) => {
        const durationMs = Date.now() - started;
        if (signal)
          resolve({ exitCode: signalExitCode(signal), signal, error: undefined, durationMs });
        else resolve({ exitCode: code ?? 1, signal: undefined, error: undefined, durationMs });
      });
    });
  } finally {
    for (const s of signals) process.off(s, forward);
  }
}
