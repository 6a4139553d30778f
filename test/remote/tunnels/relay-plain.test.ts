// src/remote/tunnels/relay.py in `plain` mode, run directly with python3 (no sshd, no sidecar):
// it says where it listens, forwards bytes both ways and half-closes, reports a held port as
// `ERROR bind` (exit 3), and exits when its stdin (the exec channel) closes.
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { client, program, receive, server, start, stopAll } from "./helpers.js";

const RELAY = program("relay.py");

afterEach(() => stopAll());

/** The relay listening on 127.0.0.1 (port `listen`, 0: any), forwarding to 127.0.0.1:target. */
function relay(target: number, listen = 0, waitS = 0) {
  return start("python3", [
    "-u",
    RELAY,
    "plain",
    "127.0.0.1",
    String(listen),
    "127.0.0.1",
    String(target),
    String(waitS),
  ]);
}

describe("relay.py plain", () => {
  it("says where it listens and carries bytes both ways, then the client's end of data", async () => {
    let ended = false;
    const seen: Buffer[] = [];
    const target = await server((s: Socket) => {
      s.on("data", (b: Buffer) => {
        seen.push(b);
        s.write(b.toString().toUpperCase());
      });
      s.on("end", () => {
        ended = true;
        s.end("bye");
      });
    });
    const r = relay(target.port);
    const m = /^LISTEN 127\.0\.0\.1 (\d+)$/.exec(await r.line("LISTEN "));
    expect(m).not.toBeNull();
    const c = await client(Number(m![1]));
    c.sock.write("hello relay");
    await receive(c.got, "HELLO RELAY");
    expect(Buffer.concat(seen).toString()).toBe("hello relay");
    // a half-close travels through: the target sees the end and can still answer
    c.sock.end();
    await receive(c.got, "HELLO RELAYbye");
    expect(ended).toBe(true);
    await target.close();
  });

  it("exits (0) when its stdin closes", async () => {
    const target = await server(() => undefined);
    const r = relay(target.port);
    await r.line("LISTEN ");
    r.proc.stdin.end();
    expect(await r.exited).toBe(0);
    await target.close();
  });

  it("a port still held after the wait is `ERROR bind host:port: ...` and exit 3", async () => {
    const held = await server(() => undefined);
    const r = relay(held.port, held.port, 0.3);
    expect(await r.line("ERROR ")).toMatch(
      new RegExp(`^ERROR bind 127\\.0\\.0\\.1:${held.port}: `),
    );
    expect(await r.exited).toBe(3);
    expect(r.lines.some((l) => l.startsWith("LISTEN"))).toBe(false);
    await held.close();
  });

  it("takes the port it was given once it is let go within the wait", async () => {
    const held = await server(() => undefined);
    const r = relay(1, held.port, 5);
    await new Promise((res) => setTimeout(res, 300));
    await held.close();
    expect(await r.line("LISTEN ")).toBe(`LISTEN 127.0.0.1 ${held.port}`);
  });
});
