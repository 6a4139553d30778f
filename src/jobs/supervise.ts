/**
 * Run a command in its own process group, forward SIGINT/SIGTERM to the whole group, and map
 * its end to an exit code: its own code, 128+signal when killed, 127 when it does not exist.
 */
import { constants } from "node:os";
import { execa } from "execa";
import { EXIT } from "../cli/exit-codes.js";

export interface SuperviseOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** called with the child's pid (also its process-group id) once it started */
  onStart?: (pid: number) => void;
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

export async function supervise(command: string[], opts: SuperviseOptions = {}): Promise<SuperviseResult> {
  const started = Date.now();
  const [file, ...args] = command;
  const child = execa(file!, args, {
    stdio: "inherit",
    detached: true, // its own process group, so that kill reaches every descendant that stays in it
    reject: false,
    cleanup: false,
    env: opts.env ?? process.env,
    extendEnv: false,
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const forward = (sig: NodeJS.Signals): void => {
    if (child.pid) killGroup(child.pid, sig);
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, forward);
  if (child.pid) opts.onStart?.(child.pid);
  try {
    const res = await child;
    const durationMs = Date.now() - started;
    if (res.failed && res.exitCode === undefined && !res.signal) {
      const code = (res.cause as NodeJS.ErrnoException | undefined)?.code;
      const exitCode = code === "ENOENT" ? EXIT.COMMAND_NOT_FOUND : EXIT.CANNOT_EXECUTE;
      const why = code === "ENOENT" ? `command not found: ${file}` : `cannot execute ${file}: ${res.shortMessage}`;
      return { exitCode, signal: undefined, error: why, durationMs };
    }
    if (res.signal) return { exitCode: signalExitCode(res.signal), signal: res.signal, error: undefined, durationMs };
    return { exitCode: res.exitCode ?? 1, signal: undefined, error: undefined, durationMs };
  } finally {
    for (const s of signals) process.off(s, forward);
  }
}
