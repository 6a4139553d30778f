/**
 * A durable reverse tunnel (docs/tunnels.md, "Durable tunnels"): sshd listens on the pool's
 * loopback only, and a relay that survives a dropped SSH connection listens where workers dial and
 * carries their connections to that port (durable-hub.ts is this end). On a reconnect the relay is
 * found again through its control channel; the workers' connections never closed, and resume.
 * Without python3 on the pool it is an ordinary reverse tunnel.
 */
import type { Duplex } from "node:stream";
import type { SshLease } from "../ssh/connections.js";
import type { TunnelDeps, TunnelSpec } from "./base.js";
import { DurableHub } from "./durable-hub.js";
import { startDurableRelay, type Relay } from "./relay.js";
import { killRelayCommand, relayAliveCommand, relayPortCommand } from "./relay-commands.js";
import { relayListenHost } from "./relay-placement.js";
import { ReverseTunnel } from "./reverse.js";

export class DurableReverseTunnel extends ReverseTunnel {
  /** the relay's handshakes, its control channel and every connection through it */
  private hub: DurableHub | undefined;
  private ctlWatch: NodeJS.Timeout | undefined;

  constructor(spec: TunnelSpec, deps: TunnelDeps) {
    super(spec, deps);
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

  override record(): ReturnType<ReverseTunnel["record"]> {
    const r = super.record();
    if (this.hub) r.resumed_connections = this.hub.resumed;
    return r;
  }

  private get durableTimes(): { resumeS: number; pingS: number } {
    return { resumeS: this.deps.durable?.resumeS ?? 120, pingS: this.deps.durable?.pingS ?? 2 };
  }

  protected override async listen(
    opening: boolean,
    wantRemote: number,
    wantDial: number,
  ): Promise<void> {
    if (this.hub && opening) await this.findPython(this.lease!, this.rec.bind !== "loopback");
    if (!this.hub) return await super.listen(opening, wantRemote, wantDial);
    const lease = this.lease!;
    const hub = this.hub;
    if (!opening) await this.reclaim(lease, false);
    this.bindAddr = "127.0.0.1";
    await this.bind(opening ? 0 : wantRemote);
    if (this.closing) {
      await this.unbind();
      return;
    }
    const port = this.boundPort;
    this.portChanged(
      "remote_port",
      opening ? 0 : this.rec.remote_port,
      port,
      "the port was taken on the pool",
    );
    this.rec.remote_port = port;
    this.rec.reach = "relay";
    const relay = this.relay;
    if (!opening && relay && hub.keys) {
      // the relay reads the forwarded port from its state directory at each connect
      if (port !== wantRemote)
        await lease
          .exec(relayPortCommand(hub.keys.id, port), { timeoutMs: 20_000 })
          .catch(() => undefined);
      const t = this.durableTimes;
      if (await this.relayBack(lease, relay, hub, t)) {
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

  /**
   * Whether the relay's control channel came back after a reconnect. Past the usual wait, a relay
   * that still runs on the pool is slow (a loaded pool; a connect stuck on the dropped connection),
   * not gone: replacing it would lose its connections, and Parsl would wait for their tasks for
   * ever (the soak saw that hang). So it is waited for while it runs, up to resumeS, after which
   * it gives up by itself.
   */
  private async relayBack(
    lease: SshLease,
    relay: Relay,
    hub: DurableHub,
    t: { resumeS: number; pingS: number },
  ): Promise<boolean> {
    if (await hub.waitControl((3 * t.pingS + 4) * 1000)) return true;
    const deadline = Date.now() + t.resumeS * 1000;
    while (Date.now() < deadline && !this.closing && relay.pgid !== null && hub.keys) {
      const r = await lease
        .exec(relayAliveCommand(hub.keys.id, relay.pgid), { timeoutMs: 20_000 })
        .catch(() => undefined);
      if (r?.stdout.trim() !== "ALIVE") return false;
      this.deps.log?.info(
        { id: this.rec.id },
        `tunnel ${this.rec.id}: the relay runs on the pool but its control channel is not back yet; waiting for it`,
      );
      if (await hub.waitControl(Math.min(5_000, Math.max(1, deadline - Date.now())))) return true;
    }
    return false;
  }

  /** Durable tunnels need python3 on the pool for their relay; without one the tunnel is an ordinary one (said in the log and the record). */
  private async findPython(lease: SshLease, cluster: boolean): Promise<void> {
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

  private async startDurable(wantDial: number): Promise<void> {
    const cluster = this.rec.bind !== "loopback";
    const host = cluster ? relayListenHost(this.rec.remote_host) : "127.0.0.1";
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
    if (await this.adoptRelay(host, wantDial, start)) this.watchControl();
  }

  /** End a relay that is gone or stuck (only if its command line still names it), and start another; its connections are lost. */
  private async replaceRelay(lease: SshLease, relay: Relay, why: string): Promise<void> {
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

  protected override onConnection(ch: Duplex): void {
    if (this.closing || !this.hub) return super.onConnection(ch);
    this.hub.accept(ch);
  }

  protected override relayLost(): void {
    // a durable relay lives on, and is found again after the reconnect
    if (!this.hub) super.relayLost();
  }

  protected override async stopRelay(): Promise<void> {
    clearInterval(this.ctlWatch);
    await super.stopRelay();
    this.hub?.dropAll();
  }
}
