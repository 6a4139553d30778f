/** exec and spawn over an SshLink's session channel, under the process-group wrapper. */
import { PassThrough } from "node:stream";
import { SidecarError } from "../errors.js";
import type { ExecOptions, ExecResult, HostProcess, SpawnOptions } from "./host.js";
import type { SessionChannel } from "./link.js";
import { buildScript, killGroupCommand, PgidSniffer, wrapRemote } from "./remote-command.js";

/** Output kept per stream by exec (more is dropped with a note). */
export const EXEC_MAX_OUTPUT = 64 * 1024 * 1024;

/** How a session channel is obtained: waits for the connection and a free session slot. */
export type OpenSession = (
  command: string,
) => Promise<{ channel: SessionChannel; done: () => void; onGone?: OnGone }>;

/** Subscribe to the end of the channel's connection; returns what unsubscribes. */
export type OnGone = (cb: () => void) => () => void;

/** How long a channel may still close by itself after its connection went away. */
const CLOSE_GRACE_MS = 500;

/**
 * A channel may outlive its connection's death (ssh2 closes channels only when the connection
 * ends cleanly): it may never emit 'end' or 'close', and whoever waits on it would wait forever.
 * Once the connection is gone, end and close it ourselves (the handlers then report a lost
 * connection).
 */
export function closeWhenGone(channel: SessionChannel, onGone: OnGone | undefined): void {
  if (!onGone) return;
  let closed = false;
  // the subscription goes with the channel: a long-lived connection must not keep every
  // channel it ever carried
  const off = onGone(() => {
    setTimeout(() => {
      if (closed) return;
      if (!channel.readableEnded) channel.push(null);
      if (!channel.stderr.readableEnded) channel.stderr.push(null);
      channel.emit("close");
    }, CLOSE_GRACE_MS).unref();
  });
  channel.once("close", () => {
    closed = true;
    off();
  });
}

function signalName(sig: string | undefined | null): string | null {
  if (!sig) return null;
  return sig.startsWith("SIG") ? sig : `SIG${sig}`;
}

class Collector {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;
  add(b: Buffer): void {
    if (this.size + b.length <= EXEC_MAX_OUTPUT) {
      this.chunks.push(b);
      this.size += b.length;
    } else this.dropped += b.length;
  }
  text(): string {
    const s = Buffer.concat(this.chunks).toString("utf8");
    return this.dropped > 0 ? `${s}\n[parsl-sidecar: ${this.dropped} more bytes dropped]` : s;
  }
}

export interface RemoteExecDeps {
  open: OpenSession;
  /** run a short command (used to signal the group) */
  killGroup: (pgid: number, signal: string) => Promise<void>;
  target: string;
}

/** Run `command` remotely and collect its output; a timeout kills the remote process group. */
export async function remoteExec(
  deps: RemoteExecDeps,
  command: string,
  opts: ExecOptions = {},
): Promise<ExecResult> {
  const onData = opts.onOutput;
  const started = Date.now();
  const script = buildScript(command, opts);
  const { channel, done, onGone } = await deps.open(wrapRemote(script));
  closeWhenGone(channel, onGone);
  const out = new Collector();
  const err = new Collector();
  let pgid: number | undefined;
  const sniffer = new PgidSniffer((p) => {
    pgid = p;
  });
  let exitCode: number | null = null;
  let signal: string | null = null;
  let gotExit = false;
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  return await new Promise<ExecResult>((resolve, reject) => {
    channel.on("data", (b: Buffer) => {
      out.add(b);
      onData?.("stdout", b);
    });
    channel.stderr.on("data", (b: Buffer) => {
      const rest = sniffer.push(b);
      if (rest.length > 0) {
        err.add(rest);
        onData?.("stderr", rest);
      }
    });
    channel.on("exit", (code: number | null, sig?: string) => {
      gotExit = true;
      exitCode = typeof code === "number" ? code : null;
      signal = signalName(sig);
    });
    channel.on("close", () => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      done();
      const rest = sniffer.end();
      if (rest.length > 0) err.add(rest);
      if (!gotExit && !timedOut) {
        reject(
          new SidecarError(
            "SSH_CONNECT",
            `The connection to \`${deps.target}\` was lost while running a remote command (it may still be running there${pgid ? ` as process group ${pgid}` : ""})`,
            { data: { target: deps.target, pgid } },
          ),
        );
        return;
      }
      resolve({
        command,
        exitCode,
        signal,
        stdout: out.text(),
        stderr: err.text(),
        durationMs: Date.now() - started,
        timedOut,
      });
    });
    if (opts.timeoutMs !== undefined && opts.timeoutMs > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        const kill = async (sig: string): Promise<void> => {
          if (pgid !== undefined) await deps.killGroup(pgid, sig).catch(() => undefined);
        };
        void kill("TERM");
        killTimer = setTimeout(() => {
          void kill("KILL").finally(() => channel.close());
        }, 2000);
        killTimer.unref();
      }, opts.timeoutMs);
    }
    if (opts.stdin !== undefined) channel.end(opts.stdin);
    else channel.end();
  });
}

/** Start `command` remotely in its own process group and hand back its streams. */
export async function remoteSpawn(
  deps: RemoteExecDeps,
  command: string,
  opts: SpawnOptions = {},
): Promise<HostProcess> {
  const { channel, done, onGone } = await deps.open(wrapRemote(buildScript(command, opts)));
  closeWhenGone(channel, onGone);
  const stderr = new PassThrough();
  let resolvePgid!: (p: number) => void;
  let rejectPgid!: (e: Error) => void;
  const pgid = new Promise<number>((res, rej) => {
    resolvePgid = res;
    rejectPgid = rej;
  });
  pgid.catch(() => undefined);
  const sniffer = new PgidSniffer(
    (p) =>
      p === undefined
        ? rejectPgid(
            new SidecarError(
              "SSH_EXEC",
              `The remote command on \`${deps.target}\` did not report its process group`,
            ),
          )
        : resolvePgid(p),
    opts.onStartup,
  );
  channel.stderr.on("data", (b: Buffer) => {
    const rest = sniffer.push(b);
    if (rest.length > 0) stderr.write(rest);
  });
  channel.stderr.on("end", () => {
    const rest = sniffer.end();
    if (rest.length > 0) stderr.write(rest);
    stderr.end();
  });
  let exit: { exitCode: number | null; signal: string | null } = { exitCode: null, signal: null };
  channel.on("exit", (code: number | null, sig?: string) => {
    exit = { exitCode: typeof code === "number" ? code : null, signal: signalName(sig) };
  });
  const exited = new Promise<{ exitCode: number | null; signal: string | null; lost?: boolean }>(
    (resolve) => {
      channel.on("close", () => {
        done();
        const rest = sniffer.end();
        if (rest.length > 0) stderr.write(rest);
        if (!stderr.writableEnded) stderr.end();
        if (exit.exitCode !== null || exit.signal !== null) return resolve(exit);
        // no exit status: the connection dropped
        resolve({ ...exit, lost: true });
      });
    },
  );
  return {
    stdin: channel,
    stdout: channel,
    stderr,
    pgid,
    exited,
    kill: async (signal: NodeJS.Signals = "SIGTERM") => {
      const p = await pgid;
      await deps.killGroup(p, signal);
    },
  };
}

export { killGroupCommand };
