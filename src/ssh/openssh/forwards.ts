/**
 * Forwards through the master. listen: sshd on the pool listens and the master connects each
 * connection to a Unix socket the sidecar serves (`ssh -O forward -R [addr:]port:SOCKET`; for
 * port 0 ssh prints the port sshd chose), or straight to a TCP port here (`...:HOST:PORT`);
 * close is `-O cancel`. connect: one connection from
 * the pool to host:port (`ssh -W host:port`, a direct-tcpip channel of the master).
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { SidecarError } from "../../errors.js";
import { sleep, within } from "../../util/timeout.js";
import type { RemoteListener } from "../link.js";
import { ChildChannel } from "./channel.js";
import { clientOptions } from "./master.js";
import type { MasterLog } from "./master-log.js";
import type { OpenSshTarget } from "./resolve.js";
import { messageLines, runSsh } from "./run.js";

export interface ForwardContext {
  sshPath: string;
  controlPath: string;
  t: OpenSshTarget;
  /** the master's log when the sidecar started it (it names why a connection failed) */
  log?: MasterLog;
}

/** `host` as ssh writes it in a forward: IPv6 in brackets, `*` for every address. */
function hostWord(host: string): string {
  if (host === "") return "*";
  return host.includes(":") ? `[${host}]` : host;
}

function listenServer(path: string, accept: (conn: Duplex) => void): Promise<Server> {
  rmSync(path, { force: true });
  // half-open as a TCP connection or an SSH channel: the far side may stop sending first
  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => accept(sock));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/**
 * Destinations of refused forwards, by `addr:port`. When sshd refuses `-O forward -R addr:P:X`
 * (P given, not 0), the master keeps its permission "connections to P go to X" (mux.c clears it
 * only for port 0; seen with OpenSSH 9.2 and in its current source), and that older entry wins
 * once a later forward gets P: its connections would go to X. So a listener that gets P serves
 * a socket X as well, and a forward that would go elsewhere than a stale host:port X is given
 * back. Per master: a new master starts clean.
 */
export class StaleForwards {
  private readonly targets = new Map<string, string[]>();

  note(addr: string, port: number, target: string): void {
    const k = `${hostWord(addr)}:${port}`;
    this.targets.set(k, [...(this.targets.get(k) ?? []), target]);
  }

  targetsFor(addr: string, port: number): string[] {
    return this.targets.get(`${hostWord(addr)}:${port}`) ?? [];
  }
}

export interface OpenListener extends RemoteListener {
  /** forget the forward without asking the master (it is gone) */
  drop(): void;
}

/**
 * Where the master sends each connection: a Unix socket the sidecar serves (`accept` gets each
 * connection), or a TCP port here that the master connects to itself (a direct forward: no
 * copy through the sidecar; docs/tunnels.md, "Direct forwards").
 */
export type ForwardTo =
  | { socketPath: string; accept: (conn: Duplex) => void }
  | { host: string; port: number };

/** Have sshd listen on addr:port and hand each connection to `to`. */
export async function remoteListen(
  ctx: ForwardContext,
  to: ForwardTo,
  addr: string,
  port: number,
  stale: StaleForwards,
): Promise<OpenListener> {
  const viaSocket = "socketPath" in to;
  const servers = viaSocket
    ? [{ server: await listenServer(to.socketPath, to.accept), path: to.socketPath }]
    : [];
  const drop = (): void => {
    for (const s of servers.splice(0)) {
      s.server.close();
      rmSync(s.path, { force: true });
    }
  };
  const target = viaSocket ? to.socketPath : `${hostWord(to.host)}:${to.port}`;
  const spec = `${hostWord(addr)}:${port}:${target}`;
  const base = [...clientOptions(ctx.controlPath, ctx.t), "--", ctx.t.host];
  const r = await runSsh(ctx.sshPath, ["-O", "forward", "-R", spec, ...base], {
    timeoutMs: 15_000,
  }).catch((err: unknown) => {
    drop();
    throw err;
  });
  const bound = port === 0 ? Number(r.stdout.trim().split(/\s+/)[0]) : port;
  if (r.code !== 0 || !Number.isInteger(bound) || bound <= 0) {
    drop();
    if (port !== 0) stale.note(addr, port, target);
    const said =
      messageLines(r.stderr).join("; ") ||
      (r.timedOut ? "no answer from the master" : `ssh exited with ${r.code}`);
    throw new SidecarError(
      "TUNNEL_FAILED",
      `\`${ctx.t.target}\` refused to listen on ${addr || "*"}:${port} (remote port forwarding): ${said}. The port may be taken, or sshd forbids it (AllowTcpForwarding, PermitListen, GatewayPorts for an address other than loopback).`,
      { data: { target: ctx.t.target, addr, port } },
    );
  }
  // cancelled as asked: a forward asked for port 0 is not cancelled by the port it got
  const cancel = (): Promise<void> =>
    within(
      runSsh(ctx.sshPath, ["-O", "cancel", "-R", spec, ...base], { timeoutMs: 5_000 })
        .then(() => undefined)
        .catch(() => undefined),
      5_000,
      undefined,
    );
  const old = stale.targetsFor(addr, bound).filter((t) => t !== target);
  // a stale socket can be served here too; a stale host:port, or any stale entry of a direct
  // forward (which serves no socket), would take this forward's connections elsewhere
  const lost = viaSocket ? old.filter((t) => !t.startsWith("/")) : old;
  if (lost.length > 0) {
    drop();
    await cancel();
    throw new SidecarError(
      "TUNNEL_FAILED",
      `\`${ctx.t.target}\`: the master still sends connections to ${addr || "*"}:${bound} to ${lost[0]} (a refused forward it did not forget), so that port cannot be used for ${target}; ask for another port`,
      { data: { target: ctx.t.target, addr, port: bound } },
    );
  }
  try {
    if ("socketPath" in to)
      for (const path of old) servers.push({ server: await listenServer(path, to.accept), path });
  } catch (err) {
    drop();
    throw err;
  }
  let closed = false;
  return {
    port: bound,
    drop: () => {
      closed = true;
      drop();
    },
    close: async () => {
      if (closed) return;
      closed = true;
      // our socket goes first: a sidecar that exits while the master answers leaves no file
      drop();
      // -O cancel exits 0 even when the master did not know the forward: nothing to check
      await cancel();
    },
  };
}

/** One connection from the pool to host:port through the master. */
export function remoteConnect(
  ctx: ForwardContext,
  host: string,
  port: number,
  timeoutMs: number,
): Promise<ChildChannel> {
  const since = Date.now();
  const args = [
    "-S",
    ctx.controlPath,
    "-o",
    "ControlMaster=no",
    // -v after LogLevel: its "master session id" line says the channel is open
    "-v",
    "-o",
    "BatchMode=yes",
    "-o",
    "ProxyCommand=false",
    ...ctx.t.options,
    "-W",
    `${hostWord(host)}:${port}`,
    "--",
    ctx.t.host,
  ];
  const child = spawn(ctx.sshPath, args, { stdio: ["pipe", "pipe", "pipe"] });
  const channel = new ChildChannel(child);
  let said = "";
  return new Promise<ChildChannel>((resolve, reject) => {
    let done = false;
    const fail = async (why: string): Promise<void> => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      channel.close();
      // our master logs the reason a moment later (connect refused, no such host)
      let reason: string | undefined;
      for (let i = 0; i < 5 && ctx.log && !reason; i++) {
        reason = ctx.log.connectFailure(host, port, since);
        if (!reason) await sleep(40);
      }
      reject(
        new SidecarError(
          "SSH_CONNECT",
          `\`${ctx.t.target}\` could not connect to ${host}:${port}: ${reason ?? why}`,
          { data: { target: ctx.t.target, host, port } },
        ),
      );
    };
    const timer = setTimeout(() => void fail(`no connection within ${timeoutMs} ms`), timeoutMs);
    child.stderr!.on("data", (b: Buffer) => {
      if (done) return;
      said += b.toString("utf8");
      if (/master session id: \d+/.test(said)) {
        done = true;
        clearTimeout(timer);
        said = "";
        resolve(channel);
      }
    });
    child.on("error", (err) => void fail(err.message));
    child.on(
      "close",
      () => void fail(messageLines(said).join("; ") || "the master refused the connection"),
    );
  });
}
