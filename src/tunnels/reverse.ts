/**
 * Reverse tunnel: sshd on the pool listens, each connection is carried to a port here. Compute
 * nodes reach it through sshd's own non-loopback bind (GatewayPorts) or a relay on the head
 * (relay-placement.ts). A durable tunnel (reverse-durable.ts) carries connections through a relay
 * that keeps them across dropped SSH connections.
 */
import type { Duplex } from "node:stream";
import { SidecarError } from "../errors.js";
import type { SshLease } from "../ssh/connections.js";
import type { DirectListener, RemoteListener, SshLink } from "../ssh/link.js";
import { TunnelBase } from "./base.js";
import { DurableStream } from "./durable-stream.js";
import { startRelay, type Relay } from "./relay.js";
import {
  chooseReach,
  dialRelay,
  dialSshd,
  placeRelay,
  relayListenHost,
  type StartRelay,
} from "./relay-placement.js";
import { bindRemote, rebindRemote } from "./remote-listen.js";
import { type PoolSession, ReverseCheck } from "./reverse-check.js";
import { inspectPool, type PoolInfo, reclaimPool } from "./reverse-pool.js";
import { connectService } from "./service.js";
import type { CheckResult, TunnelRecord } from "./types.js";

function isDirect(l: RemoteListener): l is DirectListener {
  return "counts" in l;
}

/** `PARSL_SIDECAR_DIRECT_FORWARDS=0` makes every connection come through the sidecar */
function directForwards(): boolean {
  return process.env.PARSL_SIDECAR_DIRECT_FORWARDS !== "0";
}

export class ReverseTunnel extends TunnelBase {
  protected bindAddr = "127.0.0.1";
  /** sshd's listener on the pool, on the connection up now */
  protected listener: RemoteListener | undefined;
  /** the connection generation being set up: a listen on a later one is the next set-up's */
  private generation = 0;
  protected relay: Relay | undefined;
  protected python: string | undefined;
  /** the pool-side sshd process of the connection the tunnel was last checked on, and that machine's boot id */
  private session: PoolSession | undefined;
  /** the relay's process group on the pool before the connection dropped */
  private lostRelayPgid: number | null = null;
  private readonly checks = new ReverseCheck();

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
    const link = this.lease!.connection;
    await link.ready(30_000);
    this.generation = link.generation;
    await this.listen(this.rec.state === "opening", wantRemote, wantDial);
  }

  /** The connection being set up, still up (else the set-up fails; the reconnect sets up again). */
  private link(): SshLink {
    const link = this.lease!.connection;
    if (link.generation !== this.generation || link.state !== "ready")
      throw new SidecarError(
        "SSH_CONNECT",
        `The connection to \`${this.rec.target}\` dropped while tunnel ${this.id} was being set up on it`,
        { data: { target: this.rec.target } },
      );
    return link;
  }

  /** Connections sshd forwards come to the tunnel. */
  private readonly accept = (conn: Duplex): void => this.onConnection(conn);

  /** On a ready connection, bind sshd's listener where workers (or the relay) dial. */
  protected async listen(opening: boolean, wantRemote: number, wantDial: number): Promise<void> {
    const lease = this.lease!;
    const cluster = this.rec.bind !== "loopback";
    // a relay waits for its old port: end what the dropped connection left first
    if (!opening && this.rec.reach === "relay") await this.reclaim(lease);
    this.bindAddr = cluster ? this.rec.remote_host || "0.0.0.0" : "127.0.0.1";
    const relayHost = relayListenHost(this.bindAddr);
    // behind a relay, sshd's listener is only the relay's target, 127.0.0.1:port: asked for it by
    // that name, as sshd binds any other loopback request on every family and keeps what it got
    // (::1 alone when another process holds 127.0.0.1:port, which the relay would then dial)
    if (!opening && this.rec.reach === "relay") this.bindAddr = "127.0.0.1";
    // first time in cluster mode: bind any port, then see what sshd really bound
    await this.bind(opening && cluster ? 0 : wantRemote);
    if (!opening && this.rec.reach !== "relay" && this.boundPort !== wantRemote && this.session) {
      // the port workers dial is still held: by the dropped connection, most likely
      await this.reclaim(lease);
      await this.rebind(wantRemote);
    }
    if (opening && cluster) {
      const { listeners } = await this.inspect(lease, true, this.boundPort);
      this.rec.reach = chooseReach(this.rec, this.bindAddr, listeners, this.python);
      if (this.rec.reach !== "relay" && wantRemote !== 0 && wantRemote !== this.boundPort)
        await this.rebind(wantRemote);
      if (this.rec.reach === "relay" && this.bindAddr !== "127.0.0.1") {
        this.bindAddr = "127.0.0.1";
        await this.rebind(this.boundPort);
      }
    }
    if (this.closing) {
      await this.unbind();
      return;
    }
    const port = this.boundPort;
    const relayed = this.rec.reach === "relay";
    const prevRemote = opening ? (relayed ? 0 : wantRemote) : this.rec.remote_port;
    this.portChanged("remote_port", prevRemote, port, "the port was taken on the pool");
    this.rec.remote_port = port;
    if (relayed) await this.startRelay(wantDial, relayHost);
    else {
      this.portChanged(
        "dial_port",
        opening ? wantDial : this.rec.dial_port,
        port,
        "the port was taken on the pool",
      );
      dialSshd(this.rec, this.bindAddr, port);
    }
  }

  /** sshd listens on bindAddr:`want` (any port if it is taken) for this tunnel. */
  protected async bind(want: number): Promise<void> {
    this.setListener(await bindRemote(this.listenOn, this.bindAddr, want, this.rec.target));
  }

  /** Give back the port bound and listen on `want` instead (any port if it is taken). */
  private async rebind(want: number): Promise<void> {
    const have = this.listener!;
    this.setListener(undefined);
    this.setListener(await rebindRemote(this.listenOn, have, want));
  }

  /**
   * One listen on the connection being set up. An ordinary tunnel over a transport that can
   * connect to the service itself (our own OpenSSH master) does, so no byte is copied here
   * (docs/tunnels.md, "Direct forwards"); otherwise each connection comes to `accept`.
   */
  private readonly listenOn = async (port: number): Promise<RemoteListener> => {
    const link = this.link();
    if (!this.rec.durable && directForwards() && link.listenDirect) {
      const to = { host: this.rec.local_host, port: this.rec.local_port };
      const d = await link.listenDirect(this.bindAddr, port, to);
      if (d) return d;
    }
    return await link.listen(this.bindAddr, port, this.accept);
  };

  /** the listener now; a direct one's connections are counted from the transport */
  private setListener(l: RemoteListener | undefined): void {
    const was = this.listener;
    if (was && isDirect(was)) this.rec.total_connections += was.counts().total;
    this.listener = l;
    // kept while the tunnel waits for a reconnect: it says how the connections were carried
    if (l) this.rec.direct = isDirect(l);
  }

  override record(): TunnelRecord {
    const r = super.record();
    const l = this.listener;
    if (l && isDirect(l)) {
      const c = l.counts();
      r.connections = c.live;
      r.total_connections += c.total;
    }
    return r;
  }

  /** connections a direct forward carried when its connection dropped (none are copied here) */
  protected override directCut(since: number): number {
    const l = this.listener;
    if (!l || !isDirect(l)) return 0;
    const c = l.counts();
    return c.live + c.ends.filter((t) => t >= since).length;
  }

  /** The port sshd listens on for the tunnel now. */
  protected get boundPort(): number {
    return this.listener?.port ?? 0;
  }

  /** sshd stops listening for the tunnel. */
  protected async unbind(): Promise<void> {
    const listener = this.listener;
    this.setListener(undefined);
    await listener?.close();
  }

  /** What the pool has (reverse-pool.ts): its python3 and, for `cluster`, the addresses to dial. */
  protected async inspect(lease: SshLease, cluster: boolean, port?: number): Promise<PoolInfo> {
    const info = await inspectPool(lease, cluster, port);
    this.python = info.python;
    if (info.dialHosts) this.rec.dial_hosts = info.dialHosts;
    return info;
  }

  /** The relay's environment from the owner's hook (which first readies what ends it with its owner). */
  protected async relayEnv(): Promise<Record<string, string> | undefined> {
    return this.deps.relayEnv?.(this.rec.owner, this.rec.target);
  }

  /**
   * Place a relay on `host` (relay-placement.ts); it becomes the tunnel's relay and what workers
   * dial. Undefined when the tunnel closed meanwhile (the relay is stopped again).
   */
  protected async adoptRelay(
    host: string,
    wantDial: number,
    start: StartRelay,
  ): Promise<Relay | undefined> {
    const relay = await placeRelay(start, wantDial);
    if (this.closing) {
      await relay.stop();
      return undefined;
    }
    this.relay = relay;
    this.portChanged("dial_port", wantDial, relay.port, "the port was still held on the pool");
    dialRelay(this.rec, host, relay);
    return relay;
  }

  private async startRelay(wantDial: number, host: string): Promise<void> {
    const env = await this.relayEnv();
    const relay = await this.adoptRelay(host, wantDial, (port, waitS) =>
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

  /**
   * After a reconnect: end what the dropped connection may have left holding the tunnel's ports
   * on the pool (its session, and with `relayToo` its relay), once (reverse-pool.ts).
   */
  protected async reclaim(lease: SshLease, relayToo = true): Promise<void> {
    if (this.session === undefined) return;
    const pgid = relayToo ? this.lostRelayPgid : null;
    await reclaimPool(lease, this.session, pgid, this.rec.id, this.deps.log);
    this.session = undefined;
    this.lostRelayPgid = null;
  }

  /** A connection sshd forwarded. */
  protected onConnection(ch: Duplex): void {
    if (this.closing) {
      ch.destroy();
      return;
    }
    this.onStream(ch);
  }

  /** A connection through the tunnel (an SSH channel, or a durable stream through the relay). */
  protected onStream(ch: Duplex): void {
    if (this.closing) {
      ch.destroy();
      return;
    }
    this.checks.screen(ch, (c, head) => this.toLocal(c, head));
  }

  private toLocal(ch: Duplex, head: Buffer | undefined): void {
    const sock = connectService(
      this.rec.local_host,
      this.rec.local_port,
      ch instanceof DurableStream,
    );
    if (head && head.length > 0) sock.write(head);
    if (head && head.length > 0) this.rec.bytes_in += head.length;
    this.join(sock, ch);
    ch.resume(); // a connection held during a check was paused
  }

  async check(): Promise<CheckResult> {
    const lease = this.lease;
    if (!lease) return this.noteCheck({ ok: false, at: Date.now(), error: "not open" });
    const l = this.listener;
    const direct =
      l && isDirect(l) ? { listener: l, exact: this.rec.reach !== "relay" } : undefined;
    const { result, session } = await this.checks.run(
      lease,
      this.python,
      this.rec.dial_host,
      this.rec.dial_port,
      direct,
    );
    if (session) this.session = session;
    return this.noteCheck(result);
  }

  protected onDown(): void {
    // the listener ended with its connection
    this.setListener(undefined);
    this.relayLost();
  }

  /** The link went down, and the relay with its exec channel: reclaim its group after the reconnect. */
  protected relayLost(): void {
    this.lostRelayPgid = this.relay?.pgid ?? this.rec.relay?.pgid ?? null;
    this.relay = undefined;
    if (this.rec.relay) this.rec.relay.pgid = null;
  }

  protected async reopen(): Promise<void> {
    await this.track(this.establish(this.rec.remote_port, this.rec.dial_port));
  }

  /** the establishing (or relay replacing) under way, which close waits for */
  protected busy: Promise<void> | undefined;
  protected track(p: Promise<void>): Promise<void> {
    this.busy = p;
    p.finally(() => {
      if (this.busy === p) this.busy = undefined;
    }).catch(() => undefined);
    return p;
  }

  /** Stop the relay (when the tunnel closes). */
  protected async stopRelay(): Promise<void> {
    await this.relay?.stop();
    this.relay = undefined;
  }

  async close(reason: string): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.busy?.catch(() => undefined);
    await this.unbind();
    await this.stopRelay();
    for (const f of [...this.live]) f();
    this.releaseLease();
    this.setState("closed", { reason });
  }
}
