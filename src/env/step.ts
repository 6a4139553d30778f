/** Runs one long install command on a host, turning its output into progress and its failure into ENV_FAILED. */
import { SidecarError } from "../errors.js";
import type { Host } from "../ssh/host.js";
import { within } from "../util/timeout.js";

/** A progress report of an ensure: phase, a human line, and a fraction when the tool gives one. */
export interface EnvProgress {
  target: string;
  env: string;
  phase: string;
  message: string;
  fraction?: number;
}

export type ProgressFn = (p: Omit<EnvProgress, "target" | "env">) => void;

export interface StepOptions {
  env?: Record<string, string>;
  /** a phase name for progress */
  phase: string;
  onProgress?: ProgressFn;
  signal?: AbortSignal;
  /** turn an output record into a progress line (undefined: skip it) */
  parse?: (record: string) => { message: string; fraction?: number } | undefined;
  /** explain a failure from the collected output (e.g. conda's JSON error) */
  explain?: (stdout: string, stderr: string) => string | undefined;
  /** the lock's watchdog: told the command's process group while it runs */
  watch?: { watch(pgid: number): void; unwatch(): void };
}

export interface StepResult {
  stdout: string;
  stderr: string;
}

const KEEP = 256 * 1024;

function keepTail(buf: string): string {
  return buf.length > KEEP ? buf.slice(-KEEP) : buf;
}

/** Split a stream into records at newlines, carriage returns and NULs (conda --json uses NUL). */
function splitter(onRecord: (r: string) => void): { push(s: string): void; end(): void } {
  let pending = "";
  return {
    push(s) {
      pending += s;
      const parts = pending.split(/[\n\r\0]/);
      pending = parts.pop() ?? "";
      for (const p of parts) if (p.trim() !== "") onRecord(p);
    },
    end() {
      if (pending.trim() !== "") onRecord(pending);
      pending = "";
    },
  };
}

/** Run `command` (a shell command line) and resolve with its output, or throw ENV_FAILED. */
export async function runStep(
  host: Host,
  command: string,
  what: string,
  opts: StepOptions,
): Promise<StepResult> {
  if (opts.signal?.aborted)
    throw new SidecarError(
      "SHUTTING_DOWN",
      `${what} on ${host.target} was cancelled before it started`,
    );
  const proc = await host.spawn(command, opts.env ? { env: opts.env } : {});
  proc.stdin.end();
  if (opts.watch) proc.pgid.then((p) => opts.watch!.watch(p)).catch(() => undefined);
  let stdout = "";
  let stderr = "";
  let last = 0;
  const report = (r: string): void => {
    const parsed = opts.parse ? opts.parse(r) : { message: r.trim() };
    if (!parsed || !opts.onProgress) return;
    // keep the event rate sane for chatty tools; fractions are always worth sending at the end
    const now = Date.now();
    if (parsed.fraction !== undefined && parsed.fraction < 1 && now - last < 200) return;
    last = now;
    opts.onProgress({
      phase: opts.phase,
      message: parsed.message.slice(0, 300),
      ...(parsed.fraction !== undefined ? { fraction: parsed.fraction } : {}),
    });
  };
  const out = splitter(report);
  const err = splitter(report);
  proc.stdout.setEncoding("utf8");
  proc.stderr.setEncoding("utf8");
  proc.stdout.on("data", (s: string) => {
    stdout = keepTail(stdout + s);
    out.push(s);
  });
  proc.stderr.on("data", (s: string) => {
    stderr = keepTail(stderr + s);
    err.push(s);
  });
  const onAbort = (): void => void proc.kill("SIGTERM").catch(() => undefined);
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const streamsDone = Promise.all([
    new Promise((r) => proc.stdout.once("close", r)),
    new Promise((r) => proc.stderr.once("close", r)),
  ]);
  const exit = await proc.exited;
  opts.watch?.unwatch();
  await within<unknown>(streamsDone, 2000, undefined);
  opts.signal?.removeEventListener("abort", onAbort);
  out.end();
  err.end();
  if (opts.signal?.aborted)
    throw new SidecarError(
      "SHUTTING_DOWN",
      `${what} on ${host.target} was cancelled (the sidecar is shutting down); it is not recorded as done`,
    );
  if (exit.exitCode !== 0) {
    const explained = opts.explain?.(stdout, stderr);
    const lines = `${stderr}\n${stdout}`
      .replace(/\0/g, "\n")
      .trim()
      .split("\n")
      .filter((l) => l.trim() !== "");
    const detail = explained ?? lines.slice(-15).join("\n");
    const how = exit.signal ? `was killed by ${exit.signal}` : `failed (exit ${exit.exitCode})`;
    throw new SidecarError(
      "ENV_FAILED",
      `${what} on ${host.target} ${how}${detail ? `:\n${detail}` : ""}`,
      { data: { target: host.target, command, exit_code: exit.exitCode, signal: exit.signal } },
    );
  }
  return { stdout, stderr };
}
