// Forwards and copies through an OpenSSH ControlMaster against a real sshd (on this machine, so
// "on the pool" is reachable from here too): listen (port 0, data both ways, refusal, close),
// connect (-W), putFile (small and large).
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { connect as tcpConnect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { stopAllAfterAll } from "../../testbed/hooks.js";
import { makeTempDir } from "../../testbed/registry.js";
import { eventually } from "../helpers.js";
import { bedPerBlock, exec } from "./helpers.js";

stopAllAfterAll();

/** connect to 127.0.0.1:port from here; resolves with the socket or the error code */
function dial(port: number): Promise<Socket | string> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, "127.0.0.1");
    s.once("connect", () => resolve(s));
    s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

function readAll(d: Duplex): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    d.on("data", (b: Buffer) => chunks.push(b));
    d.on("end", () => resolve(Buffer.concat(chunks)));
    d.on("close", () => resolve(Buffer.concat(chunks)));
    d.on("error", () => undefined);
  });
}

/** answers each connection, once its sender is done, with `pong:` and what it sent */
function pong(conn: Duplex): void {
  void readAll(conn).then((got) => conn.end(Buffer.concat([Buffer.from("pong:"), got])));
}

describe("listen: sshd on the pool listens, the sidecar serves", () => {
  const h = bedPerBlock();

  it("port 0: the server's port, connections both ways, then close", {
    timeout: 30000,
  }, async () => {
    const accepted: Duplex[] = [];
    const l = await h.link.listen("127.0.0.1", 0, (c) => {
      accepted.push(c);
      pong(c);
    });
    expect(l.port).toBeGreaterThan(1023);
    // a program on the pool connects to it
    const r = await exec(
      h.link,
      `python3 -c 'import socket,sys; s = socket.create_connection(("127.0.0.1", ${l.port})); s.sendall(b"from the pool\\n"); s.shutdown(1); sys.stdout.write(s.makefile().read())'`,
    );
    expect(r.stdout).toBe("pong:from the pool\n");
    // and several at once, with more data each way
    const big = randomBytes(4 * 1024 * 1024);
    const socks = await Promise.all([1, 2, 3].map(() => dial(l.port)));
    const replies = socks.map(async (s) => {
      if (typeof s === "string") throw new Error(s);
      const all = readAll(s);
      s.end(Buffer.concat([big, Buffer.from("\n")]));
      return await all;
    });
    for (const reply of await Promise.all(replies))
      expect(createHash("sha256").update(reply).digest("hex")).toBe(
        createHash("sha256")
          .update(Buffer.concat([Buffer.from("pong:"), big, Buffer.from("\n")]))
          .digest("hex"),
      );
    expect(accepted.length).toBe(4);
    await l.close();
    expect(await eventually(async () => (await dial(l.port)) === "ECONNREFUSED")).toBe(true);
  });

  it("a port given: that port; a taken port is refused with sshd's reason", {
    timeout: 30000,
  }, async () => {
    const first = await h.link.listen("127.0.0.1", 0, pong);
    await expect(h.link.listen("127.0.0.1", first.port, pong)).rejects.toMatchObject({
      code: "TUNNEL_FAILED",
      message: expect.stringMatching(
        new RegExp(`refused to listen on 127.0.0.1:${first.port}.*listen port ${first.port}`),
      ),
    });
    await first.close();
    const again = await h.link.listen("127.0.0.1", first.port, pong);
    expect(again.port).toBe(first.port);
    const s = await dial(again.port);
    if (typeof s === "string") throw new Error(s);
    const reply = readAll(s);
    s.end("x\n");
    expect((await reply).toString()).toBe("pong:x\n");
    await again.close();
  });
});

/** a TCP server here that answers like `pong`; `seen` holds the peer port of each connection */
async function tcpPong(): Promise<{ server: Server; port: number; seen: number[] }> {
  const seen: number[] = [];
  const server = createServer({ allowHalfOpen: true }, (c) => {
    seen.push(c.remotePort ?? 0);
    pong(c);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : 0, seen };
}

describe("listenDirect: the master connects to a port here itself", () => {
  const h = bedPerBlock();

  it("carries connections, counts them from the master's log, and finds one by its port", {
    timeout: 30000,
  }, async () => {
    const svc = await tcpPong();
    const since = Date.now();
    const l = await h.link.listenDirect!("127.0.0.1", 0, { host: "127.0.0.1", port: svc.port });
    expect(l).toBeDefined();
    const r = await exec(
      h.link,
      `python3 -c 'import socket,sys; s = socket.create_connection(("127.0.0.1", ${l!.port})); print(s.getsockname()[1]); s.sendall(b"hi\\n"); s.shutdown(1); sys.stdout.write(s.makefile().read())'`,
    );
    const [src, reply] = r.stdout.split("\n");
    expect(reply).toBe("pong:hi");
    expect(svc.seen).toHaveLength(1);
    expect(await l!.arrival(Number(src), since, 5000)).toEqual({ ok: true });
    // found by its port, it counts as the sidecar's probe: not a connection that arrived
    expect(l!.counts()).toMatchObject({ total: 0 });
    const other = await dial(l!.port);
    if (typeof other === "string") throw new Error(other);
    expect(await eventually(() => l!.counts().live === 1 && l!.counts().total === 1)).toBe(true);
    other.destroy();
    expect(await eventually(() => l!.counts().live === 0)).toBe(true);
    await l!.close();
    expect(await eventually(async () => (await dial(l!.port)) === "ECONNREFUSED")).toBe(true);
    svc.server.close();
  });

  it("a port the master would still send elsewhere (a refused forward it kept) is given back with why", {
    timeout: 30000,
  }, async () => {
    const a = await tcpPong();
    const b = await tcpPong();
    const first = await h.link.listenDirect!("127.0.0.1", 0, { host: "127.0.0.1", port: a.port });
    // refused (taken), but the master keeps "first.port goes to b"
    await expect(
      h.link.listenDirect!("127.0.0.1", first!.port, { host: "127.0.0.1", port: b.port }),
    ).rejects.toMatchObject({ code: "TUNNEL_FAILED" });
    await first!.close();
    await expect(
      h.link.listenDirect!("127.0.0.1", first!.port, { host: "127.0.0.1", port: a.port }),
    ).rejects.toMatchObject({
      code: "TUNNEL_FAILED",
      message: expect.stringMatching(
        `still sends connections to 127.0.0.1:${first!.port} to 127.0.0.1:${b.port}`,
      ),
    });
    // a socket forward cannot serve a host:port either
    await expect(h.link.listen("127.0.0.1", first!.port, pong)).rejects.toMatchObject({
      code: "TUNNEL_FAILED",
    });
    // and the port was given back each time
    expect(await eventually(async () => (await dial(first!.port)) === "ECONNREFUSED")).toBe(true);
    a.server.close();
    b.server.close();
  });
});

describe("connect: one connection from the pool through the master", () => {
  const h = bedPerBlock();

  it("reaches a TCP port on the pool, data both ways", { timeout: 30000 }, async () => {
    const banner = await h.link.connect("127.0.0.1", h.bed.sshd.port, 10000);
    const first = await new Promise<string>((r) =>
      banner.once("data", (b: Buffer) => r(String(b))),
    );
    expect(first).toMatch(/^SSH-2\.0-OpenSSH/);
    banner.destroy();

    const server: Server = createServer((c) => c.pipe(c)); // echo
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const c = await h.link.connect("127.0.0.1", port, 10000);
      const data = randomBytes(2 * 1024 * 1024);
      const back = readAll(c);
      c.end(data);
      expect((await back).equals(data)).toBe(true);
    } finally {
      server.close();
    }
  });

  it("a closed port: SSH_CONNECT with the pool's reason", { timeout: 30000 }, async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    server.close();
    await expect(h.link.connect("127.0.0.1", port, 10000)).rejects.toMatchObject({
      code: "SSH_CONNECT",
      message: expect.stringMatching(
        new RegExp(`\`pool\` could not connect to 127.0.0.1:${port}: .*Connection refused`),
      ),
    });
  });
});

describe("putFile", () => {
  const h = bedPerBlock();

  it("copies a small and a large file exactly", { timeout: 60000 }, async () => {
    const dir = makeTempDir("openssh-put");
    const small = join(dir, "small.txt");
    writeFileSync(small, "hello 'world' $HOME\n");
    await h.link.putFile(small, join(dir, "small copy.txt"));
    expect(readFileSync(join(dir, "small copy.txt"), "utf8")).toBe("hello 'world' $HOME\n");
    const large = join(dir, "large.bin");
    writeFileSync(large, randomBytes(64 * 1024 * 1024));
    await h.link.putFile(large, join(dir, "large copy.bin"));
    const hash = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");
    expect(hash(join(dir, "large copy.bin"))).toBe(hash(large));
    expect(h.link.info().sessions).toBe(0);
  });

  it("a path the pool cannot write: SSH_EXEC with the shell's words", {
    timeout: 30000,
  }, async () => {
    const dir = makeTempDir("openssh-put");
    const src = join(dir, "a.txt");
    writeFileSync(src, "x");
    await expect(h.link.putFile(src, "/nonexistent-dir/a.txt")).rejects.toMatchObject({
      code: "SSH_EXEC",
      message: expect.stringMatching(
        /Cannot copy .*a\.txt to pool:\/nonexistent-dir\/a\.txt: .*nonexistent/,
      ),
    });
    await expect(h.link.putFile(join(dir, "missing"), "/tmp/x")).rejects.toMatchObject({
      code: "SSH_EXEC",
      message: expect.stringMatching(/Cannot read .*missing/),
    });
  });
});
