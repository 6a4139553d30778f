import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Publisher, Router } from "zeromq";
import { ZmtpDealer } from "../../../src/rpc/zmtp/dealer.js";
import { ZmtpRouter } from "../../../src/rpc/zmtp/router.js";

let dir: string;
const closers: Array<() => unknown> = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-dealer-"));
});
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** A DEALER whose received messages land in `got` (as strings). */
function dealer(endpoint: string, errors: string[] = []): { d: ZmtpDealer; got: string[][] } {
  const got: string[][] = [];
  const d = new ZmtpDealer(endpoint, {
    onMessage: (f) => got.push(f.map(String)),
    onProtocolError: (e) => errors.push(e),
  });
  closers.push(() => d.close());
  return { d, got };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function echoRouter(endpoint: string): Promise<{ r: ZmtpRouter; endpoint: string }> {
  const r: ZmtpRouter = new ZmtpRouter({ onMessage: (f) => r.send(f) });
  closers.push(() => r.close());
  return { r, endpoint: await r.bind(endpoint) };
}

describe("ZmtpDealer", () => {
  it("talks to a libzmq ROUTER (zeromq.js) over ipc and tcp, large messages included", async () => {
    for (const ep of [`ipc://${join(dir, "z.sock")}`, "tcp://127.0.0.1:*"]) {
      const router = new Router({ linger: 0, receiveTimeout: 5000 });
      closers.push(() => router.close());
      await router.bind(ep);
      const { d, got } = dealer(router.lastEndpoint!);
      const big = Buffer.alloc(2 * 1024 * 1024 + 5, 7);
      d.send([Buffer.from("hello"), Buffer.alloc(0), big]);
      const [id, ...frames] = await router.receive();
      expect(frames.map((f) => f.length)).toEqual([5, 0, big.length]);
      expect(frames[2]!.equals(big)).toBe(true);
      await router.send([id!, "back", ""]);
      await until(() => got.length === 1);
      expect(got[0]).toEqual(["back", ""]);
    }
  });

  it("holds messages until the ROUTER is there, and reconnects after it restarts", async () => {
    const endpoint = `ipc://${join(dir, "late.sock")}`;
    const { d, got } = dealer(endpoint);
    d.send([Buffer.from("early")]);
    await new Promise((r) => setTimeout(r, 250)); // a few failed attempts first
    const first = await echoRouter(endpoint);
    await until(() => got.length === 1);
    expect(got[0]).toEqual(["early"]);
    await first.r.close();
    await echoRouter(endpoint);
    await until(() => {
      d.send([Buffer.from("again")]);
      return got.length >= 2;
    });
    expect(got[1]).toEqual(["again"]);
  });

  it("hangs up on a peer that cannot talk to a DEALER, and on one that is not ZeroMQ", async () => {
    const pub = new Publisher({ linger: 0 });
    closers.push(() => pub.close());
    await pub.bind(`ipc://${join(dir, "pub.sock")}`);
    const errors: string[] = [];
    dealer(pub.lastEndpoint!, errors);
    await until(() => errors.length > 0);
    expect(errors[0]).toMatch(/hung up during the handshake/);

    const http: Server = createServer((s) =>
      s.resume().end("HTTP/1.1 400 Bad Request\r\n\r\n".repeat(4)),
    );
    closers.push(() => new Promise((r) => http.close(r)));
    const path = join(dir, "http.sock");
    await new Promise<void>((r) => http.listen(path, r));
    const errs: string[] = [];
    dealer(`ipc://${path}`, errs);
    await until(() => errs.length > 0);
    expect(errs[0]).toMatch(/not a ZMTP 3 greeting/);
    expect(errs.filter((e) => /hung up/.test(e))).toEqual([]);
  });

  it("refuses, sending nothing, a message over the peer's limit, and keeps its connection", async () => {
    const got: number[] = [];
    const r: ZmtpRouter = new ZmtpRouter({
      onMessage: (f) => got.push(f.slice(1).reduce((n, b) => n + b.length, 0)),
      maxMessageBytes: 4096,
    });
    closers.push(() => r.close());
    const d = new ZmtpDealer(await r.bind(`ipc://${join(dir, "lim.sock")}`), {
      onMessage: () => undefined,
      maxMessageBytes: 4096,
    });
    closers.push(() => d.close());
    // the limit counts the bytes of the frames, as the router does: 4096 in three frames passes
    d.send([Buffer.alloc(9), Buffer.alloc(64), Buffer.alloc(4096 - 73)]);
    expect(() => d.send([Buffer.alloc(9), Buffer.alloc(64), Buffer.alloc(4096 - 72)])).toThrow(
      expect.objectContaining({
        code: "RPC_MESSAGE_TOO_LARGE",
        data: { size: 4097, limit: 4096 },
        message: expect.stringContaining("4097 bytes is over the limit of 4096"),
      }),
    );
    d.send([Buffer.from("after")]);
    await until(() => got.length === 2);
    expect(got).toEqual([4096, 5]);
    expect(r.disconnected.message_bytes).toBe(0);
  });

  it("refuses an endpoint it cannot dial", () => {
    expect(() => new ZmtpDealer("inproc://x", { onMessage: () => undefined })).toThrow(
      /expected ipc:\/\/PATH or tcp:\/\/HOST:PORT/,
    );
  });
});
