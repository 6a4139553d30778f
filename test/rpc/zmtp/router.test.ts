import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Dealer, Publisher, Request } from "zeromq";
import { ZmtpRouter, type RouterOptions } from "../../../src/rpc/zmtp/router.js";
import { command, encodeMessage, greeting, properties } from "../../../src/rpc/zmtp/wire.js";

let dir: string;
const routers: ZmtpRouter[] = [];
const closers: Array<() => void> = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "psc-zmtp-"));
});
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  for (const r of routers.splice(0)) await r.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An echo router (or one doing `onMessage`), bound on ipc unless told otherwise. */
async function router(
  opts: Partial<RouterOptions> = {},
  endpoint = `ipc://${join(dir, "r.sock")}`,
): Promise<{ r: ZmtpRouter; endpoint: string; errors: string[] }> {
  const errors: string[] = [];
  const r: ZmtpRouter = new ZmtpRouter({
    onMessage: (frames) => r.send(frames),
    onProtocolError: (d) => errors.push(d),
    ...opts,
  });
  routers.push(r);
  return { r, endpoint: await r.bind(endpoint), errors };
}

function dealer(endpoint: string, options: ConstructorParameters<typeof Dealer>[0] = {}): Dealer {
  const d = new Dealer({ linger: 0, receiveTimeout: 5000, ...options });
  d.connect(endpoint);
  closers.push(() => d.close());
  return d;
}

/** A raw connection that has sent `bytes`; resolves once the router closed it (or after 5 s). */
function rawUntilClosed(path: string, bytes: Buffer): Promise<{ closed: boolean; got: Buffer }> {
  return new Promise((resolve) => {
    const s = connect(path);
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ closed: false, got: Buffer.concat(got) });
    }, 5000);
    s.on("data", (d) => got.push(d));
    s.on("error", () => undefined);
    s.on("close", () => {
      clearTimeout(timer);
      resolve({ closed: true, got: Buffer.concat(got) });
    });
    s.write(bytes);
  });
}

const dealerHello = (): Buffer =>
  Buffer.concat([greeting(), command("READY", properties({ "Socket-Type": "DEALER" }))]);

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("ZmtpRouter with libzmq peers (zeromq.js)", () => {
  it("routes replies by the id it gave each DEALER, over ipc and tcp", async () => {
    for (const ep of [`ipc://${join(dir, "a.sock")}`, "tcp://127.0.0.1:*"]) {
      const seen: string[] = [];
      const { r, endpoint } = await router(
        {
          onMessage: (f) => {
            seen.push(f[0]!.toString("hex"));
            r.send([f[0]!, Buffer.from(`for ${f[1]}`)]);
          },
        },
        ep,
      );
      if (ep.startsWith("tcp")) expect(endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      const a = dealer(endpoint);
      const b = dealer(endpoint);
      await a.send("a");
      await b.send("b");
      expect((await b.receive()).map(String)).toEqual(["for b"]);
      expect((await a.receive()).map(String)).toEqual(["for a"]);
      expect(new Set(seen).size).toBe(2);
      expect(seen.every((id) => id.length === 10 && id.startsWith("00"))).toBe(true);
    }
  });

  it("uses a peer's own routing id, and refuses a second connection with the same id", async () => {
    const ids: string[] = [];
    const { r, endpoint, errors } = await router({
      onMessage: (f) => {
        ids.push(f[0]!.toString());
        r.send(f);
      },
    });
    const a = dealer(endpoint, { routingId: "worker-1" });
    await a.send("x");
    expect((await a.receive()).map(String)).toEqual(["x"]);
    const b = dealer(endpoint, { routingId: "worker-1" });
    await b.send("y");
    await until(() => errors.length > 0);
    expect(errors[0]).toMatch(/routing id .* is already connected/);
    await a.send("z");
    expect((await a.receive()).map(String)).toEqual(["z"]);
    expect(ids).toEqual(["worker-1", "worker-1"]);
  });

  it("talks to a REQ socket (its empty delimiter is a frame like any other)", async () => {
    const { endpoint } = await router();
    const q = new Request({ linger: 0, receiveTimeout: 5000 });
    q.connect(endpoint);
    closers.push(() => q.close());
    await q.send(["one", "two"]);
    expect((await q.receive()).map(String)).toEqual(["one", "two"]);
  });

  it("carries large messages both ways (written part by part)", async () => {
    const { endpoint } = await router();
    const d = dealer(endpoint);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    await d.send([Buffer.from("head"), big, Buffer.alloc(0)]);
    const back = await d.receive();
    expect(back.length).toBe(3);
    expect(back[1]!.equals(big)).toBe(true);
    expect(back[2]!.length).toBe(0);
  });

  it("answers ZMTP heartbeats, so a peer that sends them stays connected", async () => {
    const ids = new Set<string>();
    const { r, endpoint } = await router({
      onMessage: (f) => {
        ids.add(f[0]!.toString("hex"));
        r.send(f);
      },
    });
    const d = dealer(endpoint, { heartbeatInterval: 50, heartbeatTimeout: 200 });
    await d.send("1");
    await d.receive();
    await new Promise((res) => setTimeout(res, 1000));
    await d.send("2");
    expect((await d.receive()).map(String)).toEqual(["2"]);
    expect(ids.size).toBe(1); // never reconnected
  });

  it("never takes a PUB as a peer (libzmq hangs up on a ROUTER's READY)", async () => {
    const { r, endpoint } = await router();
    const p = new Publisher({ linger: 0 });
    const disconnected = new Promise<void>((resolve) => p.events.on("disconnect", () => resolve()));
    p.connect(endpoint);
    closers.push(() => p.close());
    await disconnected;
    expect(r.peerCount).toBe(0);
  });
});

describe("ZmtpRouter with broken peers (raw connections)", () => {
  it("closes a connection that is not ZeroMQ at once, and keeps serving others", async () => {
    const { endpoint, errors } = await router();
    const res = await rawUntilClosed(endpoint.slice(6), Buffer.from("GET / HTTP/1.1\r\n\r\n"));
    expect(res.closed).toBe(true);
    expect(errors[0]).toMatch(/not a ZMTP 3 greeting/);
    const d = dealer(endpoint);
    await d.send("still here");
    expect((await d.receive()).map(String)).toEqual(["still here"]);
  });

  it("closes a connection whose READY names a socket type a ROUTER cannot talk to, saying so in an ERROR", async () => {
    const { endpoint, errors } = await router();
    const res = await rawUntilClosed(
      endpoint.slice(6),
      Buffer.concat([greeting(), command("READY", properties({ "Socket-Type": "PUB" }))]),
    );
    expect(res.closed).toBe(true);
    expect(res.got.toString("latin1")).toContain("ERROR\x13Invalid socket type");
    expect(errors[0]).toMatch(/socket type "PUB" cannot talk to a ROUTER/);
  });

  it("closes a connection that sends a message before READY, or an oversized one", async () => {
    const limits: string[] = [];
    const { r, endpoint, errors } = await router({
      maxMessageBytes: 1000,
      onLimit: (limit, value, detail) => limits.push(`${limit} ${value}: ${detail}`),
    });
    const early = await rawUntilClosed(
      endpoint.slice(6),
      Buffer.concat([greeting(), encodeMessage([Buffer.from("hi")])]),
    );
    expect(early.closed).toBe(true);
    expect(errors.at(-1)).toMatch(/message before the READY handshake/);
    const big = await rawUntilClosed(
      endpoint.slice(6),
      Buffer.concat([dealerHello(), encodeMessage([Buffer.alloc(600), Buffer.alloc(600)])]),
    );
    expect(big.closed).toBe(true);
    expect(limits.at(-1)).toBe(
      "message_bytes 1000: a message of more than 1000 bytes (a frame of 600 after 600 bytes of it), over the limit of 1000",
    );
    // judged on the header: a frame announcing more is refused before its body is sent
    const header = Buffer.alloc(9);
    header[0] = 0x02;
    header.writeBigUInt64BE(1n << 40n, 1);
    const huge = await rawUntilClosed(endpoint.slice(6), Buffer.concat([dealerHello(), header]));
    expect(huge.closed).toBe(true);
    expect(limits.at(-1)).toMatch(/a frame of 1099511627776 after 0 bytes/);
    // a command frame cannot carry a message's worth either (64 KiB)
    const cmd = await rawUntilClosed(
      endpoint.slice(6),
      Buffer.concat([greeting(), command("READY", Buffer.alloc(70_000))]),
    );
    expect(cmd.closed).toBe(true);
    expect(errors.at(-1)).toMatch(/a command frame of \d+ bytes is over the limit of 65536/);
    expect(r.disconnected).toEqual({ message_bytes: 2, pending_bytes: 0, unsigned_peers: 0 });
  });

  it("sheds unsigned peers, the largest first, once messages in progress pass the budget", async () => {
    const limits: string[] = [];
    const { r, endpoint } = await router({
      maxMessageBytes: 8000,
      maxPendingBytes: 10_000,
      onLimit: (limit) => limits.push(limit),
      onMessage: (f) => {
        if (f[1]!.toString() === "sign me") r.markSigned(f[0]!);
      },
    });
    const open = async (): Promise<Socket> => {
      const s = connect(endpoint.slice(6));
      closers.push(() => s.destroy());
      s.on("error", () => undefined);
      s.resume(); // reads (and drops) what the router sends, so its hang-up is seen
      s.write(dealerHello());
      return s;
    };
    const signed = await open();
    signed.write(encodeMessage([Buffer.from("sign me")]));
    await until(() => r.connections.unsigned === 0);
    const small = await open();
    const large = await open();
    const closed = (s: Socket): Promise<void> => new Promise((res) => s.once("close", res));
    const largeClosed = closed(large);
    // a message in progress: frames marked "more", no last frame
    small.write(Buffer.concat([Buffer.from([0x03]), u64(3000), Buffer.alloc(3000)]));
    large.write(Buffer.concat([Buffer.from([0x03]), u64(4000), Buffer.alloc(4000)]));
    await until(() => r.connections.pending_bytes >= 7000);
    expect(r.connections.unsigned).toBe(2);
    // the signed peer's 4000 bytes take the total to 11000: the largest unsigned one goes
    signed.write(Buffer.concat([Buffer.from([0x03]), u64(4000), Buffer.alloc(4000)]));
    await largeClosed;
    expect(small.destroyed).toBe(false);
    expect(limits).toEqual(["pending_bytes"]);
    expect(r.disconnected.pending_bytes).toBe(1);
    await until(() => r.connections.pending_bytes === 7000);
    expect(r.connections).toMatchObject({ open: 2, unsigned: 1 });
  });

  it("closes the oldest connection that has not sent a signed message once there are too many", async () => {
    const limits: string[] = [];
    const { r, endpoint } = await router({
      maxUnsignedPeers: 2,
      onLimit: (limit, value) => limits.push(`${limit} ${value}`),
      onMessage: (f) => r.markSigned(f[0]!),
    });
    const d = dealer(endpoint);
    await d.send("signed");
    await until(() => r.connections.unsigned === 0);
    const a = rawUntilClosed(endpoint.slice(6), dealerHello());
    await until(() => r.connections.unsigned === 1);
    void rawUntilClosed(endpoint.slice(6), greeting());
    await until(() => r.connections.unsigned === 2);
    void rawUntilClosed(endpoint.slice(6), Buffer.alloc(0));
    expect((await a).closed).toBe(true); // the oldest, not the newcomer
    expect(limits).toEqual(["unsigned_peers 2"]);
    expect(r.connections).toMatchObject({ open: 3, unsigned: 2 });
    await d.send("still served");
    await until(() => r.connections.open === 3);
  });

  it("queues no PONGs for a peer that sends PINGs and never reads", async () => {
    const { endpoint } = await router();
    const s: Socket = connect(endpoint.slice(6));
    closers.push(() => s.destroy());
    s.on("error", () => undefined);
    s.pause(); // never reads while it pings
    const ping = command("PING", Buffer.from([0, 10, ...Buffer.alloc(16, 7)]));
    s.write(Buffer.concat([dealerHello(), ...Array.from({ length: 200_000 }, () => ping)]));
    await new Promise((res) => setTimeout(res, 1000));
    let got = 0;
    s.on("data", (d: Buffer) => (got += d.length));
    s.resume();
    await new Promise((res) => setTimeout(res, 500));
    // 200,000 PONGs would be 4.6 MB; what arrives is the kernel's buffers and 64 KiB at most
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(1024 * 1024);
  });

  it("closes a connection that never finishes its handshake", async () => {
    const { endpoint, errors } = await router({ handshakeTimeoutMs: 200 });
    const res = await rawUntilClosed(endpoint.slice(6), greeting().subarray(0, 10));
    expect(res.closed).toBe(true);
    expect(res.got.subarray(0, 10).equals(greeting().subarray(0, 10))).toBe(true); // it had sent its own greeting
    expect(errors[0]).toMatch(/no handshake within 200 ms/);
  });

  it("drops messages to a peer that does not read once its queue is full, and to unknown ids", async () => {
    let id: Buffer | undefined;
    const { r, endpoint } = await router({
      sendBufferBytes: 256 * 1024,
      onMessage: (f) => (id = f[0]),
    });
    const s: Socket = connect(endpoint.slice(6));
    closers.push(() => s.destroy());
    s.pause(); // never reads
    s.write(Buffer.concat([dealerHello(), encodeMessage([Buffer.from("hello")])]));
    await until(() => id !== undefined);
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    while (r.send([id!, chunk]) && sent < 10_000) sent++;
    expect(sent).toBeLessThan(10_000); // it stopped: the peer's queue was full
    expect(r.dropped.full).toBe(1);
    expect(r.send([Buffer.from("nobody"), chunk])).toBe(false);
    expect(r.dropped.unroutable).toBe(1);
  });

  it("reads a peer's messages whatever the chunking, one byte at a time included", async () => {
    const got: string[][] = [];
    const { endpoint } = await router({ onMessage: (f) => got.push(f.slice(1).map(String)) });
    const s: Socket = connect(endpoint.slice(6));
    closers.push(() => s.destroy());
    s.on("error", () => undefined);
    const wire = Buffer.concat([
      dealerHello(),
      encodeMessage([Buffer.from("a"), Buffer.from("bc")]),
      command("PING", Buffer.from([0, 10, 1, 2])),
      encodeMessage([Buffer.alloc(300, "x")]),
    ]);
    for (const byte of wire) {
      s.write(Buffer.from([byte]));
      await new Promise((res) => setImmediate(res));
    }
    await until(() => got.length === 2);
    expect(got).toEqual([["a", "bc"], ["x".repeat(300)]]);
  });
});

describe("ZmtpRouter endpoints", () => {
  it("replaces a socket file left behind, refuses one in use or a regular file in the way, and removes its socket on close", async () => {
    const path = join(dir, "stale.sock");
    // a process that died leaves its socket file behind (bound, nobody listening)
    execFileSync("python3", [
      "-c",
      "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
      path,
    ]);
    expect(existsSync(path)).toBe(true);
    const { r, endpoint } = await router({}, `ipc://${path}`);
    const d = dealer(endpoint);
    await d.send("new");
    expect((await d.receive()).map(String)).toEqual(["new"]);
    // a live one is never taken over
    await expect(
      new ZmtpRouter({ onMessage: () => undefined }).bind(`ipc://${path}`),
    ).rejects.toThrow(/another process is listening there/);
    await d.send("still");
    expect((await d.receive()).map(String)).toEqual(["still"]);
    const file = join(dir, "plain");
    writeFileSync(file, "keep me");
    await expect(
      new ZmtpRouter({ onMessage: () => undefined }).bind(`ipc://${file}`),
    ).rejects.toThrow(/not a socket is in the way/);
    expect(existsSync(file)).toBe(true);
    await r.close();
    expect(existsSync(path)).toBe(false);
  });

  it("names what is wrong with an endpoint it cannot bind", async () => {
    const { endpoint } = await router({}, "tcp://127.0.0.1:*");
    const r = new ZmtpRouter({ onMessage: () => undefined });
    await expect(r.bind(endpoint)).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: `Cannot bind ${endpoint}: the address is in use`,
    });
    await expect(r.bind("tcp://192.0.2.1:5555")).rejects.toThrow(
      /no interface here has that address/,
    );
    await expect(r.bind("udp://x")).rejects.toThrow(/expected ipc:\/\/PATH or tcp:\/\/HOST:PORT/);
  });

  it("refuses Linux's abstract namespace (ipc://@NAME), which any local user could reach", async () => {
    await expect(
      new ZmtpRouter({ onMessage: () => undefined }).bind("ipc://@psc-test"),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(
        /abstract namespace \(ipc:\/\/@NAME\) is not supported.*use ipc:\/\/PATH/,
      ),
    });
  });

  it("binds tcp://*:* to every interface on a free port", async () => {
    const { endpoint } = await router({}, "tcp://*:*");
    expect(endpoint).toMatch(/^tcp:\/\/0\.0\.0\.0:\d+$/);
    const d = dealer(endpoint.replace("0.0.0.0", "127.0.0.1"));
    await d.send("x");
    expect((await d.receive()).map(String)).toEqual(["x"]);
  });
});
