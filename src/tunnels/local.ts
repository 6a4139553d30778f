/** Local forward: a port here carried to host:port as reached from the pool (e.g. a JupyterLab). */
import { createServer, type Server, type Socket } from "node:net";
import { SidecarError } from "../errors.js";
import { TunnelBase } from "./base.js";
import type { CheckResult } from "./types.js";

export class LocalTunnel extends TunnelBase {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  async open(): Promise<void> {
    try {
      await this.acquire();
      await this.listen();
      const check = await this.check();
      if (!check.ok)
        throw new SidecarError(
          "TUNNEL_FAILED",
          `Tunnel ${this.id}: \`${this.rec.target}\` cannot reach ${this.rec.remote_host}:${this.rec.remote_port}: ${check.error}`,
        );
      this.setState("open", { check });
    } catch (err) {
      await this.close("open failed");
      throw err;
    }
  }

  private listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = createServer((sock) => this.onConnection(sock));
      server.once("error", (err: NodeJS.ErrnoException) =>
        reject(
          new SidecarError(
            "TUNNEL_FAILED",
            `Cannot listen on ${this.rec.local_host}:${this.rec.local_port} here: ${err.code === "EADDRINUSE" ? "the port is in use" : err.message}`,
            { cause: err },
          ),
        ),
      );
      server.listen({ host: this.rec.local_host, port: this.rec.local_port }, () => {
        server.on("error", (err) =>
          this.deps.log?.warn({ id: this.id, err: err.message }, "local tunnel listener error"),
        );
        this.server = server;
        resolve();
      });
    });
  }

  private onConnection(sock: Socket): void {
    if (this.closing || !this.lease) {
      sock.destroy();
      return;
    }
    this.sockets.add(sock);
    sock.on("close", () => this.sockets.delete(sock));
    sock.on("error", () => sock.destroy());
    sock.pause();
    sock.setNoDelay(true);
    const lease = this.lease;
    lease.connection.connect(this.rec.remote_host, this.rec.remote_port, lease.waitReadyMs).then(
      (ch) => {
        if (this.closing || sock.destroyed) {
          ch.destroy();
          sock.destroy();
          return;
        }
        this.join(sock, ch);
        sock.resume();
      },
      (err: Error) => {
        this.deps.log?.warn(
          { id: this.id, err: err.message },
          "local tunnel: the pool could not connect",
        );
        sock.destroy();
      },
    );
  }

  /** Open and close a channel to remote_host:remote_port from the pool. */
  async check(): Promise<CheckResult> {
    const lease = this.lease;
    if (!lease) return this.noteCheck({ ok: false, at: Date.now(), error: "not open" });
    const t0 = Date.now();
    try {
      const ch = await lease.connection.connect(
        this.rec.remote_host,
        this.rec.remote_port,
        lease.waitReadyMs,
      );
      ch.destroy();
      return this.noteCheck({ ok: true, at: Date.now(), ms: Date.now() - t0 });
    } catch (err) {
      return this.noteCheck({ ok: false, at: Date.now(), error: (err as Error).message });
    }
  }

  protected onDown(): void {
    // the listener stays; new connections wait for the reconnect (connect waits for it)
  }

  protected async reopen(): Promise<void> {
    // nothing is bound on the pool side
  }

  async close(reason: string): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const server = this.server;
    this.server = undefined;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const f of [...this.live]) f();
    for (const sock of this.sockets) sock.destroy();
    await closed;
    this.releaseLease();
    this.setState("closed", { reason });
  }
}
