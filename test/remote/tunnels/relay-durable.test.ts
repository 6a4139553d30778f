// src/remote/tunnels/relay.py in `durable` mode, run directly with python3 (no sshd, no sidecar):
// a TCP listener here plays the sidecar's end of the forwarded port (upstream.ts, answering the
// handshake of durable-hub.ts), a client plays a worker. The hello of each channel, the frames
// of durable-frames.ts both ways, acknowledgements on the control channel, the end of data, a
// resume after the upstream drops, a forged answer refused, and `S`.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataHeader, single } from "../../../src/tunnels/durable-frames.js";
import { waitUntil } from "../helpers.js";
import { client, program, receive, start, stopAll } from "./helpers.js";
import { HELLO, type Upstream, upstream } from "./upstream.js";

const RELAY = program("relay.py");
const NONCE = expect.stringMatching(/^[0-9a-f]{32}$/);

let root: string;
let up: Upstream | undefined;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "psc-relay-"));
});
afterEach(async () => {
  stopAll();
  await up?.close();
  up = undefined;
  rmSync(root, { recursive: true, force: true });
});

/** A durable relay on 127.0.0.1 (any port) whose upstream is a hand-played sidecar end. */
async function durableRelay(resumeS = 20) {
  const secret = randomBytes(32);
  const id = randomBytes(8).toString("hex");
  up = await upstream(secret);
  const r = start("python3", [
    "-u",
    RELAY,
    "durable",
    "127.0.0.1",
    "0",
    "0",
    String(up.port),
    root,
    String(resumeS),
    "0.5",
    id,
  ]);
  r.proc.stdin.end(`${secret.toString("hex")}\n`);
  const m = /^LISTEN 127\.0\.0\.1 (\d+)$/.exec(await r.line("LISTEN "));
  expect(m).not.toBeNull();
  return { ...r, id, up, port: Number(m![1]), state: join(root, id) };
}

/** A D frame carrying `text`. */
function data(text: string): Buffer {
  const b = Buffer.from(text, "latin1");
  return Buffer.concat([dataHeader(b.length), b]);
}

describe("relay.py durable", () => {
  it("hello, frames and acknowledgements both ways, then the end of data", async () => {
    const r = await durableRelay();
    expect(readFileSync(join(r.state, "port"), "utf8")).toBe(`${r.up.port}\n`);
    const ctl = await r.up.channel("ctl");
    expect(ctl.hello).toEqual([HELLO, r.id, "ctl", "0", "new", "0", NONCE]);
    await ctl.accept();

    const w = await client(r.port);
    w.sock.write("from the worker");
    const ch = await r.up.channel("data");
    expect(ch.hello).toEqual([HELLO, r.id, "data", "1", "new", "0", NONCE]);
    await ch.accept(0);
    // what the worker sent before the channel was up arrives framed, once
    await waitUntil(
      () => (ch.data().toString() === "from the worker" ? true : undefined),
      10_000,
      "the worker's bytes upstream",
    );
    expect(ch.frames.every((f) => f.t === "D")).toBe(true);

    ch.sock.write(data("to the worker"));
    await receive(w.got, "to the worker");
    // acknowledged on the control channel: connection 1 has received 13 bytes
    await waitUntil(
      () => ctl.frames.find((f) => f.t === "K" && f.conn === 1 && f.off === 13),
      5000,
      "K 1 13 on the control channel",
    );
    // the control channel is pinged (and answered by upstream.ts)
    await waitUntil(() => ctl.frames.find((f) => f.t === "P"), 5000, "a ping");

    // the worker ends its side: E upstream; the sidecar's E ends the worker's, F both ways
    let ended = false;
    w.sock.on("end", () => (ended = true));
    w.sock.end();
    await waitUntil(() => ch.frames.find((f) => f.t === "E"), 5000, "E from the relay");
    ch.sock.write(single("E"));
    await waitUntil(() => ch.frames.find((f) => f.t === "F"), 5000, "F from the relay");
    await waitUntil(() => ended || undefined, 5000, "the worker's connection ended");
    ch.sock.write(single("F"));
    await waitUntil(
      () => ch.sock.readableEnded || ch.sock.destroyed || undefined,
      5000,
      "the data channel closed",
    );
  });

  it("resumes after the upstream drops: the worker's connection stays, what was not received is sent again", async () => {
    const r = await durableRelay();
    await (await r.up.channel("ctl")).accept();
    const w = await client(r.port);
    w.sock.write("abc");
    const ch = await r.up.channel("data");
    await ch.accept(0);
    await waitUntil(() => (ch.data().toString() === "abc" ? true : undefined), 10_000, "abc");
    ch.sock.write(data("xyz"));
    await receive(w.got, "xyz");

    r.up.drop();
    w.sock.write("def"); // while the link is down: kept by the relay
    const ctl2 = await r.up.channel("ctl", 1);
    await ctl2.accept();
    const ch2 = await r.up.channel("data", 1);
    // the relay resumes connection 1 and says it has received the 3 bytes "xyz"
    expect(ch2.hello).toEqual([HELLO, r.id, "data", "1", "resume", "3", NONCE]);
    // this end claims only "a" arrived: the relay sends the rest again, then what came since
    await ch2.accept(1);
    await waitUntil(() => (ch2.data().toString() === "bcdef" ? true : undefined), 10_000, "bcdef");
    ch2.sock.write(data("more"));
    await receive(w.got, "xyzmore");
    expect(w.sock.destroyed).toBe(false);
  });

  it("refuses an answer not made with its secret, and tries again", async () => {
    const r = await durableRelay();
    const ctl = await r.up.channel("ctl");
    const after: Buffer[] = [];
    ctl.sock.on("data", (b: Buffer) => after.push(b));
    ctl.sock.resume();
    ctl.forge();
    await waitUntil(
      () => ctl.sock.destroyed || ctl.sock.readableEnded || undefined,
      5000,
      "the channel closed",
    );
    expect(Buffer.concat(after).length).toBe(0); // no proof for a forger
    const again = await r.up.channel("ctl", 1);
    expect(again.hello[2]).toBe("ctl");
  });

  it("exits on S from the sidecar and removes its state", async () => {
    const r = await durableRelay();
    const ctl = await r.up.channel("ctl");
    await ctl.accept();
    expect(existsSync(r.state)).toBe(true);
    ctl.sock.write(single("S"));
    expect(await r.exited).toBe(0);
    expect(existsSync(r.state)).toBe(false);
  });

  it("exits when no sidecar answers within RESUME_S, and removes its state", async () => {
    const r = await durableRelay(1);
    await r.up.close(); // refused from now on
    expect(await r.exited).toBe(0);
    expect(existsSync(r.state)).toBe(false);
  });
});
