/**
 * The head-node relays (src/remote/tunnels/relay.py): a python3 process started over exec that
 * listens on the cluster-side address and forwards to the loopback end of a reverse tunnel. The
 * plain relay exits when its exec channel closes (stdin EOF); either is killed by process group
 * on close.
 */
import { SidecarError } from "../errors.js";
import type { HostProcess } from "../ssh/host.js";
import type { SshLease } from "../ssh/connections.js";
import type { DurableHub } from "./durable-hub.js";
import { within } from "../util/timeout.js";
import { durableRelayCommand, relayCommand, type DurableRelayArgs } from "./relay-commands.js";

export interface Relay {
  interpreter: string;
  listenHost: string;
  port: number;
  pgid: number | null;
  proc: HostProcess;
  /** EOF on stdin, then TERM to the group; resolves when it has exited (or after 3 s) */
  stop(): Promise<void>;
}

function firstLine(proc: HostProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    let buf = "";
    let err = "";
    const onErr = (b: Buffer): void => {
      err += b.toString();
    };
    const finish = (line: string): void => {
      clearTimeout(timer);
      proc.stdout.off("data", onData);
      proc.stderr.off("data", onErr);
      proc.stdout.resume();
      proc.stderr.resume();
      resolve(line);
    };
    const onData = (b: Buffer): void => {
      buf += b.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) finish(buf.slice(0, nl));
    };
    const timer = setTimeout(
      () => finish(`ERROR no answer from the relay in ${timeoutMs} ms ${err.trim()}`),
      timeoutMs,
    );
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onErr);
    void proc.exited.then((e) =>
      setTimeout(
        () =>
          finish(`ERROR the relay exited (${e.exitCode ?? e.signal}) ${err.trim().slice(-300)}`),
        50,
      ),
    );
  });
}

function groupOf(proc: HostProcess): Promise<number | null> {
  return within(
    proc.pgid.catch(() => null),
    2000,
    null,
  );
}

/**
 * Spawn a relay program and read its `LISTEN host port` line; `stop` ends it (after `beforeStop`)
 * with EOF on stdin and TERM to its group. A refused bind is a TUNNEL_FAILED whose data says
 * `bind_failed`.
 */
async function launch(
  lease: SshLease,
  command: string,
  what: string,
  listen: { host: string; port: number; bindWaitS: number },
  opts: { stdin?: string; beforeStop?: () => void; env?: Record<string, string> } = {},
): Promise<Omit<Relay, "interpreter">> {
  const proc = await lease.spawn(command, { env: opts.env });
  if (opts.stdin !== undefined) proc.stdin.end(opts.stdin);
  const line = await firstLine(proc, 15_000 + listen.bindWaitS * 1000);
  const m = /^LISTEN (\S+) (\d+)$/.exec(line.trim());
  const pgid = await groupOf(proc);
  const stop = async (): Promise<void> => {
    opts.beforeStop?.();
    if (!proc.stdin.writableEnded) proc.stdin.end();
    if (pgid !== null) await proc.kill("SIGTERM").catch(() => undefined);
    await within<unknown>(proc.exited, 3000, undefined);
  };
  if (!m) {
    await stop();
    throw new SidecarError(
      "TUNNEL_FAILED",
      `The ${what} on \`${lease.target}\` could not listen on ${listen.host}:${listen.port}: ${line.replace(/^ERROR /, "")}`,
      {
        data: {
          target: lease.target,
          listen: `${listen.host}:${listen.port}`,
          bind_failed: /^ERROR bind/.test(line),
        },
      },
    );
  }
  return { listenHost: listen.host, port: Number(m[2]), pgid, proc, stop };
}

/**
 * Start a durable relay (relay.py's `durable` mode) and wait until it has reached `hub` through the
 * forwarded port (its control channel). Its secret goes on stdin.
 */
export async function startDurableRelay(
  lease: SshLease,
  args: DurableRelayArgs,
  secret: Buffer,
  hub: DurableHub,
  env?: Record<string, string>,
): Promise<Relay> {
  const relay = await launch(
    lease,
    durableRelayCommand(args),
    "durable relay",
    { host: args.listenHost, port: args.listenPort, bindWaitS: args.bindWaitS },
    { stdin: `${secret.toString("hex")}\n`, beforeStop: () => hub.stopRelay(), env },
  );
  if (!(await hub.waitControl(15_000))) {
    await relay.stop();
    throw new SidecarError(
      "TUNNEL_FAILED",
      `The durable relay on \`${lease.target}\` started but did not reach the sidecar through the forwarded port 127.0.0.1:${args.upstreamPort} within 15 s (its log: ~/.parsl-sidecar/relays/${args.relayId}/relay.log while it runs)`,
      {
        data: { target: lease.target },
      },
    );
  }
  return { interpreter: args.python, ...relay };
}

/** Start a relay on `listenHost:wantPort` (0 = any) forwarding to 127.0.0.1:`targetPort`. */
export async function startRelay(
  lease: SshLease,
  python: string,
  listenHost: string,
  wantPort: number,
  targetPort: number,
  bindWaitS: number,
  env?: Record<string, string>,
): Promise<Relay> {
  const relay = await launch(
    lease,
    relayCommand(python, listenHost, wantPort, targetPort, bindWaitS),
    "relay",
    { host: listenHost, port: wantPort, bindWaitS },
    { env },
  );
  return { interpreter: python, ...relay };
}
