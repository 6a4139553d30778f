/**
 * Reverse tunnel: sshd on the pool listens, each connection is carried to a port here. Compute
 * nodes reach it through sshd's own non-loopback bind (GatewayPorts) or a relay on the head.
 */
import { randomBytes } from "node:crypto";
import { connect, type NetConnectOpts, type Socket } from "node:net";
import type { Client, ClientChannel } from "ssh2";
import { SidecarError } from "../errors.js";
import { TunnelBase } from "./base.js";
import { routeForwarded } from "./dispatch.js";
import { startRelay, type Relay } from "./relay.js";
import { CHECK_PREFIX, inspectCommand, parseLines, probeCommand, reclaimCommand } from "./scripts.js";
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

  async open(): Promise<void> {
    try {
      await this.acquire();
      await this.track(this.establish(this.rec.remote_port, this.rec.remote_port));
      const check = await this.check();
      if (!check.ok) throw new SidecarError("TUNNEL_FAILED", `Tunnel ${this.id} to \`${this.rec.target}\` opened, but the end-to-end check from the pool through ${this.rec.dial_host}:${this.rec.dial_port} failed: ${check.error}`);
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
      const info = parseLines((await lease.exec(inspectCommand(port), { timeoutMs: 20_000 })).stdout);
      this.python = info.PYTHON || undefined;
      const addrs = (info.ADDRS ?? "").split(/\s+/).filter((a) => a && !a.startsWith("127."));
      const hostAddr = info.HOSTADDR && !info.HOSTADDR.startsWith("127.") ? info.HOSTADDR : undefined;
      this.rec.dial_hosts = [...new Set([...(hostAddr ? [hostAddr] : []), ...addrs])];
      const listeners = (info.LISTENERS ?? "").split(/\s+/).filter(Boolean);
      const gateway = listeners.some((a) => WILDCARDS.has(a) || (a === this.bindAddr && a !== "127.0.0.1" && a !== "::1"));
      if (gateway) this.rec.reach = "gateway";
      else if (this.python) this.rec.reach = "relay";
      else if (this.rec.bind === "cluster") {
        throw new SidecarError("TUNNEL_FAILED", `\`${this.rec.target}\` binds forwarded ports to loopback only (sshd GatewayPorts no) and has no python3 for a relay: compute nodes cannot reach the tunnel. Set \`GatewayPorts clientspecified\` in its sshd_config, install python3, or open with bind "loopback".`);
      } else this.rec.reach = "loopback";
      if (this.rec.reach !== "relay" && wantRemote !== 0 && wantRemote !== port) port = await this.rebind(client, port, wantRemote);
    }
    if (this.closing) {
      await unforwardIn(client, this.bindAddr, port);
      return;
    }
    const relayed = this.rec.reach === "relay";
    const prevRemote = opening ? (relayed ? 0 : wantRemote) : this.rec.remote_port;
    this.portChanged("remote_port", prevRemote, port, "the port was taken on the pool");
    this.rec.remote_port = port;
    this.unroute = routeForwarded(client, this.bindAddr, port, (_info, accept) => this.onConnection(accept()));
    if (relayed) await this.startRelay(wantDial);
    else {
      this.portChanged("dial_port", opening ? wantDial : this.rec.dial_port, port, "the port was taken on the pool");
      this.rec.dial_host = this.rec.reach === "gateway" ? (WILDCARDS.has(this.bindAddr) ? (this.rec.dial_hosts[0] ?? "127.0.0.1") : this.bindAddr) : "127.0.0.1";
      this.rec.dial_port = port;
    }
  }

  /**
   * After a reconnect: the previous connection may still be alive on the pool (a network drop)
   * and hold the tunnel's ports there; end it (and its relay) so that the tunnel keeps its ports
   * and the workers dialling them reconnect. Best effort: if it fails, the ports move (reported).
   */
  private async reclaim(lease: NonNullable<typeof this.lease>): Promise<void> {
    if (this.session === undefined) return;
    try {
      const r = await lease.exec(reclaimCommand(this.session, this.lostRelayPgid), { timeoutMs: 20_000 });
      const ended = r.stdout.split("\n").filter((l) => l.startsWith("KILLED"));
      if (ended.length > 0) this.deps.log?.warn({ id: this.rec.id, ended }, `tunnel ${this.rec.id}: ended what the dropped connection left holding its ports on the pool`);
    } catch (err) {
      this.deps.log?.warn({ id: this.rec.id, err: (err as Error).message }, `tunnel ${this.rec.id}: could not check the pool for the dropped connection's leftovers`);
    }
    this.session = undefined;
    this.lostRelayPgid = null;
  }

  private async bind(client: Client, want: number): Promise<number> {
    try {
      return await forwardIn(client, this.bindAddr, want);
    } catch (err) {
      if (want === 0) throw new SidecarError("TUNNEL_FAILED", `\`${this.rec.target}\` refused to listen on ${this.bindAddr} (remote port forwarding): ${(err as Error).message}. Is AllowTcpForwarding enabled in its sshd_config?`, { cause: err });
      return await forwardIn(client, this.bindAddr, 0).catch((e: Error) => {
        throw new SidecarError("TUNNEL_FAILED", `\`${this.rec.target}\` refused remote port forwarding: ${e.message}`, { cause: e });
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
    let relay: Relay;
    try {
      relay = await startRelay(this.lease!, this.python!, host, wantDial, this.rec.remote_port, wantDial ? 3 : 0);
    } catch (err) {
      if (!wantDial || !(err instanceof SidecarError) || !err.data?.bind_failed) throw err;
      relay = await startRelay(this.lease!, this.python!, host, 0, this.rec.remote_port, 0);
    }
    if (this.closing) {
      await relay.stop();
      return;
    }
    this.relay = relay;
    this.portChanged("dial_port", wantDial, relay.port, "the port was still held on the pool");
    this.rec.dial_port = relay.port;
    this.rec.dial_host = host === "0.0.0.0" ? (this.rec.dial_hosts[0] ?? "127.0.0.1") : host;
    this.rec.relay = { interpreter: relay.interpreter, pgid: relay.pgid, listen: `${host}:${relay.port}` };
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
      const tok = text.startsWith(CHECK_PREFIX) ? text.slice(CHECK_PREFIX.length).split("\n")[0]! : "";
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

  private toLocal(ch: ClientChannel, head: Buffer | undefined): void {
    // a larger write buffer than the 16 KiB default: fewer pause/resume cycles of the channel
    const sock: Socket = connect({ host: this.rec.local_host, port: this.rec.local_port, writableHighWaterMark: 1 << 20 } as NetConnectOpts);
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
      const r = await lease.exec(probeCommand(this.python, this.rec.dial_host, this.rec.dial_port, tok), { timeoutMs: 20_000 });
      const out = parseLines(r.stdout);
      const [pid, bootId] = (out.SESSION ?? "").split(" ");
      if (Number(pid) > 1 && bootId) this.session = { pid: Number(pid), bootId };
      const line = out.RESULT ?? `no result (exit ${r.exitCode}: ${r.stderr.trim().slice(0, 200)})`;
      const ok = line.startsWith("ok") && answered;
      return this.noteCheck(ok ? { ok, at: Date.now(), ms: Date.now() - t0 } : { ok, at: Date.now(), error: line.startsWith("ok") ? "the probe was answered by something other than this tunnel" : line });
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
    return p;
  }

  async close(reason: string): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.busy?.catch(() => undefined);
    const client = this.client;
    this.unroute?.();
    if (client && this.rec.remote_port) await unforwardIn(client, this.bindAddr, this.rec.remote_port);
    await this.relay?.stop();
    this.relay = undefined;
    for (const f of [...this.live]) f();
    this.releaseLease();
    this.setState("closed", { reason });
  }
}
