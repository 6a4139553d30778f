/**
 * The sidecar's end of a durable tunnel: it answers the head-node relay's handshakes on the
 * channels sshd forwards, keeps each connection's DurableStream across cuts, and holds the relay's
 * control channel (pings both ways; `S` stops the relay). docs/tunnels.md, "Durable tunnels",
 * specifies the handshake; the relay is src/remote/tunnels/relay.py (`durable`).
 *
 * Handshake, one line each, on every channel the relay opens:
 *   relay:   PSC-DURABLE/1 <relay id> ctl|data <conn id> new|resume <bytes received> <nonce>
 *   sidecar: OK <bytes received> <nonce> <mac> | GONE <nonce> <mac> | NO <reason>
 *   relay:   <mac of "r|" + the sidecar's nonce>          (after OK only)
 * Each mac is HMAC-SHA256 under the relay's secret (given to it on stdin, never on a command
 * line): the sidecar's over the relay's line and its own reply, so the relay knows it reached
 * this sidecar and not whatever bound the forwarded port while the link was down; the relay's
 * over the sidecar's nonce, so that a local user of the head node who connects to the forwarded
 * port cannot take a connection over.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { Duplex } from "node:stream";
import type { Logger } from "../util/logger.js";
import { ackFrame, FrameReader, single } from "./durable-frames.js";
import { DurableStream } from "./durable-stream.js";

export const HELLO = "PSC-DURABLE/1";
const HANDSHAKE_MS = 10_000;

export interface RelayKeys {
  /** the relay's name: on its command line (to find and kill it), in every handshake */
  id: string;
  secret: Buffer;
}

export interface DurableHubOptions {
  /** how long a cut connection waits for the relay to resume it */
  resumeMs: number;
  /** a new connection through the relay (the tunnel splices it with the service here) */
  onStream(s: DurableStream): void;
  /** a connection ended without being resumed in time (what it held is lost) */
  onExpired?(s: DurableStream, err: Error): void;
  log?: Logger;
  /** for log lines */
  name: string;
}

export function mac(secret: Buffer, text: string): string {
  return createHmac("sha256", secret).update(text).digest("hex");
}

function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a, "latin1");
  const y = Buffer.from(b, "latin1");
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Read one `\n`-terminated line (at most `max` bytes) from `ch`; resolves with it and what followed. */
export function readLine(
  ch: Duplex,
  max: number,
  timeoutMs: number,
): Promise<{ line: string; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, value?: { line: string; rest: Buffer }): void => {
      clearTimeout(timer);
      ch.off("data", onData);
      ch.off("close", onClose);
      ch.off("end", onClose);
      ch.off("error", onClose);
      ch.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      const nl = buf.indexOf(10);
      if (nl >= 0)
        done(null, { line: buf.subarray(0, nl).toString("latin1"), rest: buf.subarray(nl + 1) });
      else if (buf.length > max) done(new Error(`no end of line in the first ${max} bytes`));
    };
    const onClose = (): void => done(new Error("closed during the handshake"));
    const timer = setTimeout(
      () => done(new Error(`no handshake line in ${timeoutMs} ms`)),
      timeoutMs,
    );
    ch.on("data", onData);
    ch.on("close", onClose);
    ch.on("end", onClose);
    ch.on("error", onClose);
    ch.resume();
  });
}

export class DurableHub {
  private current: RelayKeys | undefined;
  readonly streams = new Map<string, DurableStream>();
  private ctl: Duplex | undefined;
  private ctlWaiters: Array<() => void> = [];
  /** connections resumed after a cut, and connections lost because none came in time */
  resumed = 0;
  expired = 0;

  constructor(private readonly opts: DurableHubOptions) {}

  get keys(): RelayKeys | undefined {
    return this.current;
  }

  /** Keys for a new relay; the connections of the one before are closed (it is gone with them). */
  newRelay(): RelayKeys {
    this.dropAll();
    this.current = { id: randomBytes(8).toString("hex"), secret: randomBytes(32) };
    return this.current;
  }

  /** Whether the relay's control channel is up now. */
  get controlUp(): boolean {
    return this.ctl !== undefined;
  }

  /** Resolves true once the relay's control channel is up, false after `ms`. */
  waitControl(ms: number): Promise<boolean> {
    if (this.ctl) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.ctlWaiters = this.ctlWaiters.filter((w) => w !== wake);
        resolve(false);
      }, ms);
      const wake = (): void => {
        clearTimeout(t);
        resolve(true);
      };
      this.ctlWaiters.push(wake);
    });
  }

  /** Tell the relay to exit (best effort; the tunnel also kills its process group). */
  stopRelay(): void {
    this.ctl?.write(single("S"));
  }

  /** Close every connection and the control channel. */
  dropAll(): void {
    for (const s of [...this.streams.values()]) s.destroy();
    this.streams.clear();
    this.ctl?.destroy();
    this.ctl = undefined;
  }

  /** A channel sshd forwarded: the relay's handshake comes first. */
  accept(ch: Duplex): void {
    ch.on("error", () => undefined);
    void this.handshake(ch).catch((err: Error) => {
      this.opts.log?.debug(
        { tunnel: this.opts.name, err: err.message },
        `tunnel ${this.opts.name}: a durable handshake failed`,
      );
      ch.destroy();
    });
  }

  private async handshake(ch: Duplex): Promise<void> {
    const { line } = await readLine(ch, 512, HANDSHAKE_MS);
    const w = line.split(" ");
    const keys = this.current;
    if (w.length !== 7 || w[0] !== HELLO)
      throw new Error(`not a durable handshake: ${JSON.stringify(line.slice(0, 60))}`);
    const [, relayId, kind, connId, mode, recvText, nonceR] = w as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (!keys || relayId !== keys.id) {
      ch.end("NO unknown-relay\n");
      return;
    }
    const peerReceived = Number(recvText);
    if (
      !/^[0-9a-f]{16,64}$/.test(nonceR) ||
      !Number.isSafeInteger(peerReceived) ||
      peerReceived < 0 ||
      !/^[0-9]{1,18}$/.test(connId)
    )
      throw new Error(`malformed durable handshake: ${JSON.stringify(line.slice(0, 120))}`);
    const nonceS = randomBytes(16).toString("hex");
    let reply: string;
    const existing = this.streams.get(connId);
    if (kind === "ctl") reply = `OK 0 ${nonceS}`;
    else if (kind === "data" && mode === "new")
      reply = existing ? "NO duplicate" : `OK 0 ${nonceS}`;
    else if (kind === "data" && mode === "resume") {
      // the offset as of now: the old channel (if it still looks alive here) goes only once
      // the relay has proven itself, and what it delivers meanwhile is skipped when resent
      reply = existing ? `OK ${existing.received} ${nonceS}` : `GONE ${nonceS}`;
    } else throw new Error(`unknown durable channel ${kind}/${mode}`);
    if (reply.startsWith("NO")) {
      ch.end(`${reply}\n`);
      return;
    }
    ch.write(`${reply} ${mac(keys.secret, `${line}|${reply}`)}\n`);
    if (reply.startsWith("GONE")) {
      ch.end();
      return;
    }
    const proof = await readLine(ch, 200, HANDSHAKE_MS);
    if (!sameMac(proof.line, mac(keys.secret, `r|${nonceS}`)))
      throw new Error("the relay's proof did not match (not our relay)");
    if (this.current !== keys) throw new Error("the relay was replaced during the handshake");
    if (kind === "ctl") return this.setControl(ch, proof.rest);
    if (mode === "new") {
      if (this.streams.has(connId)) throw new Error(`connection ${connId} is already open`);
      const s = new DurableStream(
        connId,
        this.opts.resumeMs,
        (gone, err) => this.gone(gone, err),
        (conn, off) => this.ack(conn, off),
      );
      this.streams.set(connId, s);
      s.attach(ch, 0, proof.rest);
      this.opts.onStream(s);
      return;
    }
    const s = this.streams.get(connId);
    if (!s) {
      ch.destroy();
      return;
    }
    const offered = Number(reply.split(" ")[1]);
    s.attach(ch, peerReceived, proof.rest, s.received - offered);
    this.resumed++;
    this.opts.log?.info(
      { tunnel: this.opts.name, conn: connId, at: peerReceived, sent_again: s.unacked },
      `tunnel ${this.opts.name}: connection ${connId} resumed after the cut`,
    );
  }

  private gone(s: DurableStream, err: Error | null): void {
    if (this.streams.get(s.key) === s) this.streams.delete(s.key);
    if (err && /not resumed/.test(err.message)) {
      this.expired++;
      this.opts.onExpired?.(s, err);
    }
  }

  /** An acknowledgement to the relay, on the control channel (false when it is down). */
  private ack(conn: number, off: number): boolean {
    if (!this.ctl) return false;
    this.ctl.write(ackFrame(conn, off));
    return true;
  }

  private setControl(ch: Duplex, rest: Buffer): void {
    const old = this.ctl;
    this.ctl = ch;
    old?.destroy();
    const reader = new FrameReader();
    const onData = (b: Buffer): void => {
      try {
        reader.push(b, (f) => {
          if (f.t === "P") ch.write(single("Q"));
          else if (f.t === "K") this.streams.get(String(f.conn))?.acknowledged(f.off);
        });
      } catch {
        ch.destroy();
      }
    };
    ch.on("data", onData);
    // the relay's end closed (an SSH channel only half-closes by itself)
    ch.on("end", () => ch.destroy());
    ch.on("close", () => {
      if (this.ctl === ch) this.ctl = undefined;
    });
    ch.resume();
    if (rest.length > 0) onData(rest);
    for (const w of this.ctlWaiters.splice(0)) w();
  }
}
