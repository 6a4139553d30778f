// The durable stream protocol end to end, without SSH: the real relay program (python3) on this
// machine dials a TCP listener that stands in for sshd's forwarded port (each accepted socket is a
// channel), behind a proxy that can cut or silence the link; the sidecar's DurableHub answers.
// Every byte through a cut connection must arrive once, in order. The same relay over real sshd:
// reconnect.test.ts.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { programText } from "../../src/remote/index.js";
import { DurableHub, HELLO, mac, readLine } from "../../src/tunnels/durable-hub.js";
import { connectService } from "../../src/tunnels/service.js";
import { splice } from "../../src/tunnels/splice.js";
import { eventually } from "../ssh/helpers.js";
import { echoAll, echoServer, pattern, roundTrip, type Echo } from "./helpers.js";

interface Link {
  port: number;
  /** end every channel (the relay sees them close) */
  cut(): void;
  /** keep every channel open but carry nothing more on it (a dead network) */
  silence(): void;
  /** refuse new channels (the forwarded port gone) / accept them again */
  refuse(on: boolean): void;
  channels(): number;
  close(): Promise<void>;
}

/** The stand-in for the forwarded port: relay → proxy → hub. */
async function link(hub: DurableHub): Promise<Link> {
  const pairs = new Set<{ a: Socket; b: Socket }>();
  const silenced: Socket[] = [];
  let refusing = false;
  const hubSide = createServer((s) => hub.accept(s));
  await new Promise<void>((r) => hubSide.listen(0, "127.0.0.1", () => r()));
  const hubPort = (hubSide.address() as { port: number }).port;
  const proxy: Server = createServer((a) => {
    if (refusing) {
      a.destroy();
      return;
    }
    const b = connect({ host: "127.0.0.1", port: hubPort });
    const pair = { a, b };
    pairs.add(pair);
    a.pipe(b);
    b.pipe(a);
    const end = (): void => {
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on("error", end);
    b.on("error", end);
    a.on("close", end);
    b.on("close", end);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
  return {
    port: (proxy.address() as { port: number }).port,
    cut: () => {
      for (const p of [...pairs]) {
        p.a.destroy();
        p.b.destroy();
      }
    },
    silence: () => {
      for (const p of [...pairs]) {
        pairs.delete(p);
        p.a.unpipe(p.b);
        p.b.unpipe(p.a);
        p.a.pause();
        p.b.pause();
        silenced.push(p.a, p.b);
      }
    },
    refuse: (on) => {
      refusing = on;
    },
    channels: () => pairs.size,
    close: async () => {
      for (const p of pairs) {
        p.a.destroy();
        p.b.destroy();
      }
      for (const x of silenced) x.destroy();
      await new Promise((r) => proxy.close(r));
      await new Promise((r) => hubSide.close(r));
    },
  };
}

interface RelayProc {
  port: number;
  proc: ChildProcess;
  stateDir: string;
  exited: Promise<number | null>;
}

async function startRelay(
  hub: DurableHub,
  upstream: number,
  root: string,
  opts: { resumeS?: number; pingS?: number } = {},
): Promise<RelayProc> {
  const keys = hub.newRelay();
  const proc = spawn(
    "python3",
    [
      "-u",
      "-c",
      programText("tunnels/relay.py"),
      "durable",
      "127.0.0.1",
      "0",
      "0",
      String(upstream),
      root,
      String(opts.resumeS ?? 20),
      String(opts.pingS ?? 0.5),
      keys.id,
    ],
    { stdio: ["pipe", "pipe", "inherit"], detached: true },
  );
  proc.stdin!.end(`${keys.secret.toString("hex")}\n`);
  const exited = new Promise<number | null>((r) => proc.on("exit", (code) => r(code)));
  const line = await new Promise<string>((resolve, reject) => {
    let buf = "";
    proc.stdout!.on("data", (b: Buffer) => {
      buf += b.toString();
      if (buf.includes("\n")) resolve(buf.split("\n")[0]!);
    });
    proc.on("exit", (c) => reject(new Error(`relay exited ${c}: ${buf}`)));
  });
  const m = /^LISTEN \S+ (\d+)$/.exec(line);
  if (!m) throw new Error(`relay said ${line}`);
  return { port: Number(m[1]), proc, stateDir: join(root, keys.id), exited };
}

describe("durable streams (relay program against the hub)", () => {
  let echo: Echo;
  let root: string;
  const running: RelayProc[] = [];
  const links: Link[] = [];
  const hubs: DurableHub[] = [];
  const spliced = { bytes_in: 0, bytes_out: 0, connections: 0, total_connections: 0 };
  const newHub = (resumeMs = 20_000, service?: number): DurableHub => {
    const hub = new DurableHub({
      resumeMs,
      name: "t",
      onStream: (s) => {
        // as the tunnel connects it (reverse.ts): read into slabs, given back when acknowledged
        const sock = connectService("127.0.0.1", service ?? echo.port, true);
        splice(sock, s, spliced);
      },
    });
    hubs.push(hub);
    return hub;
  };
  const setup = async (
    opts: { resumeS?: number; pingS?: number; resumeMs?: number; service?: number } = {},
  ): Promise<{ hub: DurableHub; l: Link; relay: RelayProc }> => {
    const hub = newHub(opts.resumeMs, opts.service);
    const l = await link(hub);
    links.push(l);
    const relay = await startRelay(hub, l.port, root, opts);
    running.push(relay);
    expect(await hub.waitControl(5000)).toBe(true);
    return { hub, l, relay };
  };

  beforeAll(async () => {
    echo = await echoServer();
    root = mkdtempSync(join(tmpdir(), "psc-durable-"));
  });
  afterEach(async () => {
    for (const r of running.splice(0)) {
      try {
        process.kill(-r.proc.pid!, "SIGKILL");
      } catch {
        // gone already
      }
    }
    for (const h of hubs.splice(0)) h.dropAll();
    for (const l of links.splice(0)) await l.close();
  });
  afterAll(async () => {
    await echo?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("carries a connection; the state directory is private", async () => {
    const { relay } = await setup();
    const r = await roundTrip("127.0.0.1", relay.port);
    expect(r.got.equals(r.sent)).toBe(true);
    expect(existsSync(join(relay.stateDir, "port"))).toBe(true);
    expect(statSync(relay.stateDir).mode & 0o777).toBe(0o700);
  });

  it("every byte arrives once, in order, across three cuts mid-stream", {
    timeout: 60_000,
  }, async () => {
    const { hub, l, relay } = await setup();
    const data = pattern(24 << 20);
    const marks = [4 << 20, 10 << 20, 17 << 20];
    const run = echoAll("127.0.0.1", relay.port, data, (n) => {
      if (marks.length > 0 && n >= marks[0]!) {
        marks.shift();
        l.cut();
      }
    });
    const back = await run.done;
    expect(back.length).toBe(data.length);
    expect(back.equals(data)).toBe(true);
    expect(hub.resumed).toBeGreaterThanOrEqual(3);
    expect(hub.expired).toBe(0);
  });

  it("an echo at full speed both ways does not deadlock (acknowledgements never wait behind data)", {
    timeout: 60_000,
  }, async () => {
    // the echo's reads wait for its writes, which wait for acknowledgements: if those travelled
    // behind the data the sidecar stopped reading, both ends would wait for ever
    const { relay } = await setup();
    const data = pattern(64 << 20);
    const back = await echoAll("127.0.0.1", relay.port, data).done;
    expect(back.equals(data)).toBe(true);
  });

  it("a silent link (nothing closes, nothing arrives) is noticed by the pings and the stream resumes on a new channel", {
    timeout: 60_000,
  }, async () => {
    const { hub, l, relay } = await setup({ pingS: 0.3 });
    const data = pattern(8 << 20);
    let silenced = false;
    const run = echoAll("127.0.0.1", relay.port, data, (n) => {
      if (!silenced && n >= 2 << 20) {
        silenced = true;
        l.silence();
      }
    });
    const back = await run.done;
    expect(back.equals(data)).toBe(true);
    // the hub still held the silent channel when the relay came back on another: it resumed from
    // the offset it gave, and dropped what the old channel had delivered after that
    expect(hub.resumed).toBeGreaterThanOrEqual(1);
  });

  it("a connection not resumed in time is closed on both ends, and counted", {
    timeout: 60_000,
  }, async () => {
    const { hub, l, relay } = await setup({ resumeS: 2, resumeMs: 1500 });
    const s = connect({ host: "127.0.0.1", port: relay.port });
    s.on("error", () => undefined);
    const closed = new Promise<void>((r) => s.on("close", () => r()));
    s.resume(); // the relay's close is a FIN: it arrives once the socket reads
    s.write("hello");
    expect(await eventually(() => hub.streams.size === 1, 5000)).toBe(true);
    l.refuse(true);
    l.cut();
    await closed;
    expect(await eventually(() => hub.expired === 1 && hub.streams.size === 0, 5000)).toBe(true);
    // and with no sidecar for resume_s, the relay itself exits and removes its state
    expect(await relay.exited).toBe(0);
    expect(existsSync(relay.stateDir)).toBe(false);
  });

  it("survives clients that connect and vanish (closed at once, reset with data unread) while a stream runs", {
    timeout: 60_000,
  }, async () => {
    const { hub, relay } = await setup();
    const data = pattern(8 << 20);
    const run = echoAll("127.0.0.1", relay.port, data);
    for (let i = 0; i < 60; i++) {
      const s = connect({ host: "127.0.0.1", port: relay.port });
      s.on("error", () => undefined);
      await new Promise((r) => s.on("connect", r));
      if (i % 3 === 0) s.destroy();
      else if (i % 3 === 1) s.end("half a line");
      else {
        s.write(Buffer.alloc(100_000, 1));
        s.resetAndDestroy();
      }
    }
    expect((await run.done).equals(data)).toBe(true);
    expect(await eventually(() => hub.streams.size === 0, 10_000)).toBe(true);
    // the relay lived through all of it, and logged no error
    expect(hub.controlUp).toBe(true);
    expect(readFileSync(join(relay.stateDir, "relay.log"), "utf8")).not.toMatch(/error/);
  });

  it("a service here that refuses: the worker's connection is closed (FIN), not reset, as an ordinary tunnel does", async () => {
    // Parsl's preflight dials the worker port before the interchange listens
    const unused = createServer();
    await new Promise<void>((r) => unused.listen(0, "127.0.0.1", () => r()));
    const port = (unused.address() as { port: number }).port;
    await new Promise((r) => unused.close(r));
    const { hub, relay } = await setup({ service: port });
    for (let i = 0; i < 20; i++) {
      const s = connect({ host: "127.0.0.1", port: relay.port });
      const how = await new Promise<string>((resolve) => {
        s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        s.on("end", () => resolve("end"));
        s.resume();
      });
      s.destroy();
      expect(how).toBe("end");
    }
    expect(await eventually(() => hub.streams.size === 0, 5000)).toBe(true);
  });

  it("a graceful end travels both ways and leaves nothing behind", async () => {
    const { hub, relay } = await setup();
    const r = await roundTrip("127.0.0.1", relay.port, 100_000);
    expect(r.got.equals(r.sent)).toBe(true);
    expect(await eventually(() => hub.streams.size === 0, 5000)).toBe(true);
  });

  it("stops when told, and removes its state", async () => {
    const { hub, relay } = await setup();
    hub.stopRelay();
    expect(await relay.exited).toBe(0);
    expect(existsSync(relay.stateDir)).toBe(false);
  });

  it("refuses handshakes from anything but its relay: unknown id, a forged proof", async () => {
    const { hub, l, relay } = await setup();
    const live = echoAll("127.0.0.1", relay.port, pattern(1 << 20));
    await live.done;
    const keys = hub.keys!;
    const talk = async (line: string, proof?: string): Promise<string> => {
      const s = connect({ host: "127.0.0.1", port: l.port });
      s.on("error", () => undefined);
      await new Promise((r) => s.on("connect", r));
      s.write(`${line}\n`);
      const reply = await readLine(s, 512, 5000).catch((e: Error) => ({
        line: `(${e.message})`,
        rest: Buffer.alloc(0),
      }));
      if (proof !== undefined) s.write(`${proof}\n`);
      const closed = await new Promise<boolean>((r) => {
        s.on("close", () => r(true));
        setTimeout(() => r(false), 1000);
      });
      s.destroy();
      return `${reply.line.split(" ")[0]} ${closed ? "closed" : "open"}`;
    };
    expect(await talk(`${HELLO} ffffffffffffffff data 99 new 0 ${"ab".repeat(16)}`)).toBe(
      "NO closed",
    );
    // the right id but no secret: the sidecar answers, and closes on the wrong proof
    expect(
      await talk(
        `${HELLO} ${keys.id} data 99 new 0 ${"ab".repeat(16)}`,
        mac(Buffer.from("not the secret"), "r|x"),
      ),
    ).toBe("OK closed");
    expect(hub.streams.has("99")).toBe(false);
    expect(await talk("GET / HTTP/1.1")).toMatch(/closed/);
    // and the relay still works
    const r = await roundTrip("127.0.0.1", relay.port);
    expect(r.got.equals(r.sent)).toBe(true);
  });
});
