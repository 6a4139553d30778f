/**
 * Reverse tunnel: sshd on the pool listens, each connection is carried to a port here. Compute
 * nodes reach it through sshd's own non-loopback bind (GatewayPorts) or a relay on the head.
 */
import { randomBytes } from "node:crypto";
import { connect, type NetConnectOpts, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Client, ClientChannel } from "ssh2";
import { SidecarError } from "../errors.js";
import { TunnelBase, type TunnelDeps, type TunnelSpec } from "./base.js";
import { routeForwarded } from "./dispatch.js";
import { DurableHub } from "./durable-hub.js";
import { startDurableRelay, startRelay, type Relay } from "./relay.js";
import {
  CHECK_PREFIX,
  inspectCommand,
  parseLines,
  probeCommand,
  reclaimCommand,
} from "./pool-commands.js";
import { killRelayCommand, relayPortCommand } from "./relay-commands.js";
import type { CheckResult } from "./types.js";

const WILDCARDS = new Set(["0.0.0.0", "::", "*", ""]);
/** how long a connection that arrives during a check is held to see whether it is the probe */
const CHECK_HOLD_MS = 300;

function forwardIn(client: Client, addr: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    try {
      client.forwardIn(addr, port, (err, bound) => (err ? reject(err) : resolve(bound)));
    } catch (err) {
      reject(err as Error);
    }
  });
}

function unforwardIn(client: Client, addr: string, port: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 2000);
    try {
      client.unforwardIn(addr, port, () => {
        clearTimeout(t);
        resolve();
      });
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}

export class ReverseTunnel extends TunnelBase {
  private bindAddr = "127.0.0.1";
  private client: Client | undefined;
  private unroute: (() => void) | undefined;
  private relay: Relay | undefined;
  private python: string | undefined;
  /** the pool-side sshd process of the connection the tunnel was last checked on, and that machine's boot id */
  private session: { pid: number; bootId: string } | undefined;
  /** the relay's process group on the pool before the connection dropped */
  private lostRelayPgid: number | null = null;
  private readonly pending = new Map<string, () => void>();
  /** durable tunnels: the relay's handshakes, its control channel and every connection through it */
  private hub: DurableHub | undefined;
  private ctlWatch: NodeJS.Timeout | undefined;

  constructor(spec: TunnelSpec, deps: TunnelDeps) {
    super(spec, deps);
    if (spec.durable) this.makeHub();
  }

  private makeHub(): void {
    const d = this.durableTimes;
    this.hub = new DurableHub({
      resumeMs: d.resumeS * 1000,
      name: this.rec.id,
      log: this.deps.log,
      onStream: (s) => this.onStream(s),
      onExpired: (s, err) => {
        this.rec.cut_connections++;
        this.rec.cut_in_flight++;
        this.deps.log?.warn(
          { id: this.rec.id, conn: s.key },
          `tunnel ${this.rec.id}: connection ${s.key} ${err.message}; closed (what it held is lost)`,
        );
      },
    });
  }

  override record(): ReturnType<TunnelBase["record"]> {
    const r = super.record();
    if (this.hub) r.resumed_connections = this.hub.resumed;
    return r;
  }
  async open(): Promise<void> {
    try {
      await this.acquire();
      await this.track(this.establish(this.rec.remote_port, this.rec.remote_port));
      const check = await this.check();
      if (!check.ok)
        throw new SidecarError(
          "TUNNEL_FAILED",
          `Tunnel ${this.id} to \`${this.rec.target}\` opened, but the end-to-end check from the pool through ${this.rec.dial_host}:${this.rec.dial_port} failed: ${check.error}`,
        );
      this.setState("open", { check });
    } catch (err) {
      await this.close("open failed");
      throw err;
    }
  }

  /** Bind sshd's listener (and the relay) wanting these ports (0 = any). */
  private async establish(wantRemote: number, wantDial: number): Promise<void> {
    const lease = this.lease!;
    const client = await lease.connection.ready(30_000);
    this.client = client;
    const opening = this.rec.state === "opening";
    const cluster = this.rec.bind !== "loopback";
    if (this.hub) {
      if (opening) await this.findPython(lease, cluster);
      if (this.hub) return await this.establishDurable(client, opening, wantRemote, wantDial);
    }
    // a relay waits for its old port: end what the dropped connection left first
    if (!opening && this.rec.reach === "relay") await this.reclaim(lease);
    this.bindAddr = cluster ? this.rec.remote_host || "0.0.0.0" : "127.0.0.1";
    // first time in cluster mode: bind any port, then see what sshd really bound
    let port = await this.bind(client, opening && cluster ? 0 : wantRemote);
    if (!opening && this.rec.reach !== "relay" && port !== wantRemote && this.session) {
      // the port workers dial is still held: by the dropped connection, most likely
      await this.reclaim(lease);
      port = await this.rebind(client, port, wantRemote);
    }
    if (opening && cluster) {
      const info = await this.inspect(lease, true, port);
      const listeners = (info.LISTENERS ?? "").split(/\s+/).filter(Boolean);
      const gateway = listeners.some(
        (a) => WILDCARDS.has(a) || (a === this.bindAddr && a !== "127.0.0.1" && a !== "::1"),
      );
      if (gateway) this.rec.reach = "gateway";
      else if (this.python) this.rec.reach = "relay";
      else if (this.rec.bind === "cluster") {
        throw new SidecarError(
          "TUNNEL_FAILED",
          `\`${this.rec.target}\` binds forwarded ports to loopback only (sshd GatewayPorts no) and has no python3 for a relay: compute nodes cannot reach the tunnel. Set \`GatewayPorts clientspecified\` in its sshd_config, install python3, or open with bind "loopback".`,
        );
      } else this.rec.reach = "loopback";
      if (this.rec.reach !== "relay" && wantRemote !== 0 && wantRemote !== port)
        port = await this.rebind(client, port, wantRemote);
    }
    if (this.closing) {
      await unforwardIn(client, this.bindAddr, port);
      return;
    }
    const relayed = this.rec.reach === "relay";
    const prevRemote = opening ? (relayed ? 0 : wantRemote) : this.rec.remote_port;
    this.portChanged("remote_port", prevRemote, port, "the port was taken on the pool");
    this.rec.remote_port = port;
    this.unroute = routeForwarded(client, this.bindAddr, port, (_info, accept) =>
      this.onConnection(accept()),
    );
    if (relayed) await this.startRelay(wantDial);
    else {
      this.portChanged(
        "dial_port",
        opening ? wantDial : this.rec.dial_port,
        port,
        "the port was taken on the pool",
      );
      this.rec.dial_host =
        this.rec.reach === "gateway"
          ? WILDCARDS.has(this.bindAddr)
            ? (this.rec.dial_hosts[0] ?? "127.0.0.1")
            : this.bindAddr
          : "127.0.0.1";
      this.rec.dial_port = port;
    }
  }

  /**
   * What the pool has: its python3 (for a relay) and, for a tunnel compute nodes dial
   * (`cluster`), its non-loopback addresses, the head node's own first (`dial_hosts`); with a
   * port, also what listens on it.
   */
  private async inspect(
    lease: NonNullable<typeof this.lease>,
    cluster: boolean,
    port?: number,
  ): Promise<Record<string, string>> {
    const info = parseLines((await lease.exec(inspectCommand(port), { timeoutMs: 20_000 })).stdout);
    this.python = info.PYTHON || undefined;
    if (!cluster) return info;
    const addrs = (info.ADDRS ?? "").split(/\s+/).filter((a) => a && !a.startsWith("127."));
    const hostAddr = info.HOSTADDR && !info.HOSTADDR.startsWith("127.") ? info.HOSTADDR : undefined;
    this.rec.dial_hosts = [...new Set([...(hostAddr ? [hostAddr] : []), ...addrs])];
    return info;
  }

  /** Durable tunnels need python3 on the pool for their relay; without one the tunnel is an ordinary one (said in the log and the record). */
  private async findPython(lease: NonNullable<typeof this.lease>, cluster: boolean): Promise<void> {
    await this.inspect(lease, cluster);
    if (!this.python) {
      this.hub = undefined;
      this.rec.durable = false;
      this.deps.log?.warn(
        { id: this.rec.id, target: this.rec.target },
        `tunnel ${this.rec.id}: \`${this.rec.target}\` has no python3 for a durable relay; the tunnel is an ordinary one (connections through it end when the SSH connection drops)`,
      );
    }
  }

  /**
   * A durable tunnel: sshd listens on the pool's loopback only, and the relay (which survives a
   * dropped SSH connection) listens where workers dial and carries their connections to that
   * port. On a reconnect the relay is found again through its control channel; the workers'
   * connections never closed, and resume.
   */
  private async establishDurable(
    client: Client,
    opening: boolean,
    wantRemote: number,
    wantDial: number,
  ): Promise<void> {
    const lease = this.lease!;
    const hub = this.hub!;
    if (!opening) await this.reclaim(lease, false);
    this.bindAddr = "127.0.0.1";
    const port = await this.bind(client, opening ? 0 : wantRemote);
    if (this.closing) {
      await unforwardIn(client, this.bindAddr, port);
      return;
    }
    this.portChanged(
      "remote_port",
      opening ? 0 : this.rec.remote_port,
      port,
      "the port was taken on the pool",
    );
    this.rec.remote_port = port;
    this.rec.reach = "relay";
    this.unroute = routeForwarded(client, this.bindAddr, port, (_info, accept) =>
      this.onConnection(accept()),
    );
    const relay = this.relay;
    if (!opening && relay && hub.keys) {
      // the relay reads the forwarded port from its state directory at each connect
      if (port !== wantRemote)
        await lease
          .exec(relayPortCommand(hub.keys.id, port), { timeoutMs: 20_000 })
          .catch(() => undefined);
      const t = this.durableTimes;
      if (await hub.waitControl((3 * t.pingS + 4) * 1000)) {
        this.deps.log?.info(
          { id: this.rec.id, streams: hub.streams.size },
          `tunnel ${this.rec.id}: the relay is back; ${hub.streams.size} connection(s) through it resume`,
        );
        return;
      }
      await this.replaceRelay(lease, relay, "it did not come back after the reconnect");
    }
    await this.startDurable(opening ? wantDial : this.rec.dial_port);
  }

  /** The relay's environment from the owner's hook (which first readies what ends it with its owner). */
  private async relayEnv(): Promise<Record<string, string> | undefined> {
    return this.deps.relayEnv?.(this.rec.owner, this.rec.target);
  }

  private get durableTimes(): { resumeS: number; pingS: number } {
    return { resumeS: this.deps.durable?.resumeS ?? 120, pingS: this.deps.durable?.pingS ?? 2 };
  }

  private async startDurable(wantDial: number): Promise<void> {
    const cluster = this.rec.bind !== "loopback";
    const host = !cluster
      ? "127.0.0.1"
      : WILDCARDS.has(this.rec.remote_host)
        ? "0.0.0.0"
        : this.rec.remote_host;
    const keys = this.hub!.newRelay();
    const t = this.durableTimes;
    const env = await this.relayEnv();
    const start = (port: number, waitS: number): Promise<Relay> =>
      startDurableRelay(
        this.lease!,
        {
          python: this.python!,
          listenHost: host,
          listenPort: port,
          bindWaitS: waitS,
          upstreamPort: this.rec.remote_port,
          resumeS: t.resumeS,
          pingS: t.pingS,
          relayId: keys.id,
        },
        keys.secret,
        this.hub!,
        env,
      );
    if (await this.placeRelay(host, wantDial, start)) this.watchControl();
  }

  /**
   * Start a relay on `host`, on `wantDial` if it can be had within 3 s (0: any port), else on any
   * port (reported as a moved port); it becomes the tunnel's relay and what workers dial.
   * Undefined when the tunnel closed meanwhile (the relay is stopped again).
   */
  private async placeRelay(
    host: string,
    wantDial: number,
    start: (port: number, waitS: number) => Promise<Relay>,
  ): Promise<Relay | undefined> {
    let relay: Relay;
    try {
      relay = await start(wantDial, wantDial ? 3 : 0);
    } catch (err) {
      if (!wantDial || !(err instanceof SidecarError) || !err.data?.bind_failed) throw err;
      relay = await start(0, 0);
    }
    if (this.closing) {
      await relay.stop();
      return undefined;
    }
    this.relay = relay;
    this.portChanged("dial_port", wantDial, relay.port, "the port was still held on the pool");
    this.rec.dial_port = relay.port;
    this.rec.dial_host = host === "0.0.0.0" ? (this.rec.dial_hosts[0] ?? "127.0.0.1") : host;
    this.rec.relay = {
      interpreter: relay.interpreter,
      pgid: relay.pgid,
      listen: `${host}:${relay.port}`,
    };
    return relay;
  }

  /** End a relay that is gone or stuck (only if its command line still names it), and start another; its connections are lost. */
  private async replaceRelay(
    lease: NonNullable<typeof this.lease>,
    relay: Relay,
    why: string,
  ): Promise<void> {
    const hub = this.hub!;
    const lost = hub.streams.size;
    this.deps.log?.warn(
      { id: this.rec.id, lost },
      `tunnel ${this.rec.id}: the relay on the pool is replaced (${why}); ${lost} connection(s) through it are lost`,
    );
    this.rec.cut_connections += lost;
    this.rec.cut_in_flight += lost;
    if (relay.pgid !== null && hub.keys)
      await lease
        .exec(killRelayCommand(hub.keys.id, relay.pgid), { timeoutMs: 20_000 })
        .catch(() => undefined);
    this.relay = undefined;
  }

  /**
   * The relay's control channel closed while the SSH connection stayed up: the relay died (or
   * was killed). Unless it is back within a few seconds, replace it.
   */
  private watchControl(): void {
    clearInterval(this.ctlWatch);
    let downSince: number | undefined;
    this.ctlWatch = setInterval(() => {
      const hub = this.hub;
      if (!hub || this.closing || this.rec.state !== "open" || hub.controlUp) {
        downSince = undefined;
        return;
      }
      downSince ??= Date.now();
      if (Date.now() - downSince < (3 * this.durableTimes.pingS + 2) * 1000 || this.busy) return;
      downSince = undefined;
      const relay = this.relay;
      const lease = this.lease;
      if (!relay || !lease) return;
      void this.track(
        (async () => {
          await this.replaceRelay(lease, relay, "its control channel closed and did not come back");
          await this.startDurable(this.rec.dial_port);
          const check = await this.check();
          this.rec.error = check.ok ? null : `end-to-end check failed: ${check.error}`;
          this.emit({ check });
        })().catch((err: Error) => {
          this.rec.error = err.message;
          this.emit({ error: err.message });
        }),
      );
    }, 1000);
    this.ctlWatch.unref();
  }

  /**
   * After a reconnect: the previous connection may still be alive on the pool (a network drop)
   * and hold the tunnel's ports there; end it (and its relay) so that the tunnel keeps its ports
   * and the workers dialling them reconnect. Best effort: if it fails, the ports move (reported).
   */
  private async reclaim(lease: NonNullable<typeof this.lease>, relayToo = true): Promise<void> {
    if (this.session === undefined) return;
    try {
      const r = await lease.exec(
        reclaimCommand(this.session, relayToo ? this.lostRelayPgid : null),
        { timeoutMs: 20_000 },
      );
      const ended = r.stdout.split("\n").filter((l) => l.startsWith("KILLED"));
      if (ended.length > 0)
        this.deps.log?.warn(
          { id: this.rec.id, ended },
          `tunnel ${this.rec.id}: ended what the dropped connection left holding its ports on the pool`,
        );
    } catch (err) {
      this.deps.log?.warn(
        { id: this.rec.id, err: (err as Error).message },
        `tunnel ${this.rec.id}: could not check the pool for the dropped connection's leftovers`,
      );
    }
    this.session = undefined;
    this.lostRelayPgid = null;
  }

  private async bind(client: Client, want: number): Promise<number> {
    try {
      return await forwardIn(client, this.bindAddr, want);
    } catch (err) {
      if (want === 0)
        throw new SidecarError(
          "TUNNEL_FAILED",
          `\`${this.rec.target}\` refused to listen on ${this.bindAddr} (remote port forwarding): ${(err as Error).message}. Is AllowTcpForwarding enabled in its sshd_config?`,
          { cause: err },
        );
      return await forwardIn(client, this.bindAddr, 0).catch((e: Error) => {
        throw new SidecarError(
          "TUNNEL_FAILED",
          `\`${this.rec.target}\` refused remote port forwarding: ${e.message}`,
          { cause: e },
        );
      });
    }
  }

  private async rebind(client: Client, have: number, want: number): Promise<number> {
    await unforwardIn(client, this.bindAddr, have);
    try {
      return await forwardIn(client, this.bindAddr, want);
    } catch {
      return await forwardIn(client, this.bindAddr, 0);
    }
  }

  private async startRelay(wantDial: number): Promise<void> {
    const host = WILDCARDS.has(this.bindAddr) ? "0.0.0.0" : this.bindAddr;
    const env = await this.relayEnv();
    const relay = await this.placeRelay(host, wantDial, (port, waitS) =>
      startRelay(this.lease!, this.python!, host, port, this.rec.remote_port, waitS, env),
    );
    if (!relay) return;
    void relay.proc.exited.then(() => {
      if (this.relay === relay && this.rec.state === "open" && !this.closing) {
        this.rec.error = "the relay on the pool exited";
        this.emit({ error: this.rec.error });
      }
    });
  }

  private onConnection(ch: ClientChannel): void {
    if (this.closing) {
      ch.close();
      return;
    }
    if (this.hub) this.hub.accept(ch);
    else this.onStream(ch);
  }

  /** A connection through the tunnel (an SSH channel, or a durable stream through the relay). */
  private onStream(ch: Duplex): void {
    if (this.closing) {
      ch.destroy();
      return;
    }
    if (this.pending.size === 0) return this.toLocal(ch, undefined);
    // a check is running: hold this connection briefly to see whether it is the probe
    let head = Buffer.alloc(0);
    let decided = false;
    const decide = (): void => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      ch.off("data", onData);
      const text = head.toString("latin1");
      const tok = text.startsWith(CHECK_PREFIX)
        ? text.slice(CHECK_PREFIX.length).split("\n")[0]!
        : "";
      const done = this.pending.get(tok);
      if (done && text.includes("\n")) {
        ch.end(`PSC-OK ${tok}\n`);
        done();
        return;
      }
      ch.pause();
      this.toLocal(ch, head);
    };
    const onData = (b: Buffer): void => {
      head = Buffer.concat([head, b]);
      const start = head.subarray(0, CHECK_PREFIX.length).toString("latin1");
      if (head.includes(10) || head.length >= 64 || !CHECK_PREFIX.startsWith(start)) decide();
    };
    const timer = setTimeout(decide, CHECK_HOLD_MS);
    ch.on("data", onData);
  }

  private toLocal(ch: Duplex, head: Buffer | undefined): void {
    // a larger write buffer than the 16 KiB default: fewer pause/resume cycles of the channel
    const sock: Socket = connect({
      host: this.rec.local_host,
      port: this.rec.local_port,
      writableHighWaterMark: 1 << 20,
    } as NetConnectOpts);
    sock.setNoDelay(true);
    if (head && head.length > 0) sock.write(head);
    if (head && head.length > 0) this.rec.bytes_in += head.length;
    this.join(sock, ch);
    ch.resume(); // a connection held during a check was paused
  }

  async check(): Promise<CheckResult> {
    const lease = this.lease;
    if (!lease) return this.noteCheck({ ok: false, at: Date.now(), error: "not open" });
    const tok = randomBytes(12).toString("hex");
    const t0 = Date.now();
    let answered = false;
    this.pending.set(tok, () => (answered = true));
    try {
      const r = await lease.exec(
        probeCommand(this.python, this.rec.dial_host, this.rec.dial_port, tok),
        { timeoutMs: 20_000 },
      );
      const out = parseLines(r.stdout);
      const [pid, bootId] = (out.SESSION ?? "").split(" ");
      if (Number(pid) > 1 && bootId) this.session = { pid: Number(pid), bootId };
      const line = out.RESULT ?? `no result (exit ${r.exitCode}: ${r.stderr.trim().slice(0, 200)})`;
      const ok = line.startsWith("ok") && answered;
      return this.noteCheck(
        ok
          ? { ok, at: Date.now(), ms: Date.now() - t0 }
          : {
              ok,
              at: Date.now(),
              error: line.startsWith("ok")
                ? "the probe was answered by something other than this tunnel"
                : line,
            },
      );
    } catch (err) {
      return this.noteCheck({ ok: false, at: Date.now(), error: (err as Error).message });
    } finally {
      this.pending.delete(tok);
    }
  }

  protected onDown(): void {
    this.unroute?.();
    this.unroute = undefined;
    this.client = undefined;
    // a durable relay lives on, and is found again after the reconnect
    if (this.hub) return;
    this.lostRelayPgid = this.relay?.pgid ?? this.rec.relay?.pgid ?? null;
    this.relay = undefined;
    if (this.rec.relay) this.rec.relay.pgid = null;
  }

  protected async reopen(): Promise<void> {
    await this.track(this.establish(this.rec.remote_port, this.rec.dial_port));
  }

  private busy: Promise<void> | undefined;
  private track(p: Promise<void>): Promise<void> {
    this.busy = p;
    p.finally(() => {
      if (this.busy === p) this.busy = undefined;
    }).catch(() => undefined);
    return p;
  }

  async close(reason: string): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.busy?.catch(() => undefined);
    const client = this.client;
    this.unroute?.();
    clearInterval(this.ctlWatch);
    if (client && this.rec.remote_port)
      await unforwardIn(client, this.bindAddr, this.rec.remote_port);
    await this.relay?.stop();
    this.relay = undefined;
    this.hub?.dropAll();
    for (const f of [...this.live]) f();
    this.releaseLease();
    this.setState("closed", { reason });
  }
}
