/** Runs pool-side scripts with streamed stdin/stdout and turns failures into STAGING_* errors. */
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { SidecarError } from "../../errors.js";
import type { ExecResult, HostLease, HostProcess } from "../../ssh/host.js";
import { isSshLease } from "../../ssh/connections.js";
import { within } from "../../util/timeout.js";
import { classify } from "../failures.js";

/** An error for a script that failed on the pool, coded from its stderr. */
export function remoteError(
  host: HostLease,
  what: string,
  res: { exitCode: number | null; signal?: string | null; stderr: string },
): SidecarError {
  const text =
    res.stderr.trim().split("\n").slice(-5).join("; ") || `exit code ${res.exitCode ?? res.signal}`;
  const err = new Error(text);
  return new SidecarError(classify(err), `${what} on ${host.target} failed: ${text}`, {
    data: { target: host.target, exit_code: res.exitCode },
  });
}

/**
 * Rejections for operations in flight when the SSH connection goes down: a channel caught in
 * the drop does not always report its end, and nothing must wait for it forever.
 */
export class ConnectionWatch {
  private readonly waiters = new Set<() => void>();
  private readonly off: (() => void) | undefined;

  constructor(private readonly host: HostLease) {
    const conn = isSshLease(host) ? host.connection : undefined;
    if (conn) {
      const onDown = (): void => {
        for (const w of [...this.waiters]) w();
      };
      conn.on("down", onDown);
      this.off = () => conn.off("down", onDown);
    }
  }

  /** A promise that rejects (with a lost-connection error) if the connection drops first. */
  lost(what: string): { promise: Promise<never>; dispose(): void } {
    let fire!: () => void;
    const promise = new Promise<never>((_, reject) => {
      fire = () => reject(lostError(this.host, what));
    });
    promise.catch(() => undefined);
    this.waiters.add(fire);
    return { promise, dispose: () => this.waiters.delete(fire) };
  }

  close(): void {
    this.off?.();
    this.waiters.clear();
  }
}

/** The script ended without an exit status: the channel closed under it (connection lost). */
export function lostError(host: HostLease, what: string): SidecarError {
  return new SidecarError(
    "SSH_CONNECT",
    `The connection to ${host.target} was lost during ${what}`,
    { data: { target: host.target, transient: true } },
  );
}

/** exec, throwing on a non-zero exit (except the codes in `ok`). */
export async function execOk(
  host: HostLease,
  what: string,
  script: string,
  opts: { stdin?: string | Buffer; ok?: number[] } = {},
): Promise<ExecResult> {
  const res = await host.exec(script, opts.stdin === undefined ? {} : { stdin: opts.stdin });
  if (res.exitCode !== 0 && !(res.exitCode !== null && opts.ok?.includes(res.exitCode)))
    throw remoteError(host, what, res);
  return res;
}

function drain(stream: Readable, into: Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    stream.on("data", (b: Buffer) => into.push(b));
    stream.on("end", resolve);
    stream.on("close", resolve);
    stream.on("error", () => resolve());
  });
}

/** Feed `input` to a spawned script and collect its output; the script's failure wins over EPIPE. */
export async function spawnWithInput(
  host: HostLease,
  what: string,
  script: string,
  input: Readable,
  signal?: AbortSignal,
  watch?: ConnectionWatch,
): Promise<{ stdout: string; stderr: string }> {
  const lost = watch?.lost(what);
  try {
    return await (lost
      ? Promise.race([runWithInput(host, what, script, input, signal, lost.promise), lost.promise])
      : runWithInput(host, what, script, input, signal));
  } finally {
    lost?.dispose();
  }
}

async function runWithInput(
  host: HostLease,
  what: string,
  script: string,
  input: Readable,
  signal?: AbortSignal,
  lost?: Promise<never>,
): Promise<{ stdout: string; stderr: string }> {
  const proc = await host.spawn(script);
  lost?.catch(() => {
    input.destroy();
    proc.stdin.destroy();
    proc.stdout.destroy();
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const outDone = drain(proc.stdout, out);
  const errDone = drain(proc.stderr, err);
  let feedErr: unknown;
  try {
    await pipeline(input, proc.stdin, signal ? { signal } : {});
  } catch (e) {
    feedErr = e;
    // make sure the pool side sees the end and cleans its temporary file
    proc.stdin.destroy();
  }
  const exit = await waitExit(proc, feedErr !== undefined);
  await Promise.all([outDone, errDone]);
  const stderr = Buffer.concat(err).toString("utf8");
  if (exit.exitCode === null && exit.signal === null && !isOwnError(feedErr))
    throw lostError(host, what);
  if (exit.exitCode !== 0) {
    if (feedErr !== undefined && !stderr.trim()) throw feedErr;
    throw remoteError(host, what, { ...exit, stderr });
  }
  if (feedErr !== undefined) throw feedErr;
  return { stdout: Buffer.concat(out).toString("utf8"), stderr };
}

/** An error of the data being fed (the source), as opposed to the pool side going away. */
function isOwnError(err: unknown): boolean {
  return (
    err instanceof SidecarError ||
    (err !== undefined &&
      (err as { code?: string }).code !== "ERR_STREAM_PREMATURE_CLOSE" &&
      (err as { code?: string }).code !== "EPIPE")
  );
}

type Exit = { exitCode: number | null; signal: string | null };

async function waitExit(proc: HostProcess, killSoon: boolean): Promise<Exit> {
  if (!killSoon) return await proc.exited;
  const exit = await within<Exit | undefined>(proc.exited, 5000, undefined);
  if (exit) return exit;
  void proc.kill("SIGTERM").catch(() => undefined);
  return await proc.exited;
}

/** A Readable of a spawned script's stdout that errors (with its stderr) when it fails. */
export async function spawnReader(
  host: HostLease,
  what: string,
  script: string,
  stdin?: Buffer,
  watch?: ConnectionWatch,
): Promise<{ stream: Readable; proc: HostProcess }> {
  const proc = await host.spawn(script);
  const lost = watch?.lost(what);
  const err: Buffer[] = [];
  const errDone = drain(proc.stderr, err);
  if (stdin) proc.stdin.end(stdin);
  else proc.stdin.end();
  async function* gen(): AsyncGenerator<Buffer> {
    let finished = false;
    try {
      // through a PassThrough: iterating the channel itself would destroy it before its exit status arrives
      const out = proc.stdout.pipe(new PassThrough({ highWaterMark: 1 << 20 }));
      lost?.promise.catch((err: unknown) => out.destroy(err as Error));
      for await (const chunk of out as AsyncIterable<Buffer>) yield chunk;
      const exit = await (lost ? Promise.race([proc.exited, lost.promise]) : proc.exited);
      await errDone;
      finished = true;
      if (exit.exitCode === null && exit.signal === null) throw lostError(host, what);
      if (exit.exitCode !== 0)
        throw remoteError(host, what, { ...exit, stderr: Buffer.concat(err).toString("utf8") });
    } finally {
      lost?.dispose();
      if (!finished) void proc.kill("SIGTERM").catch(() => undefined);
    }
  }
  return { stream: Readable.from(gen(), { objectMode: false, highWaterMark: 1 << 20 }), proc };
}
