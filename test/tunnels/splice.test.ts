// src/tunnels/splice.ts with real sockets: a reply that ends with FIN right behind its last bytes
// reaches a slow channel whole (the tail was dropped when the splice destroyed both sides on the
// first close), and an error still tears both sides down at once.
import { connect } from "node:net";
import { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { splice, type SpliceStats } from "../../src/tunnels/splice.js";
import { closeListeners, listen } from "./helpers.js";

afterEach(closeListeners);

function stats(): SpliceStats {
  return { bytes_in: 0, bytes_out: 0, connections: 0, total_connections: 0 };
}

describe("splice", () => {
  it("a reply ended right behind its last bytes reaches a slow channel whole", async () => {
    const size = 4 * 1024 * 1024;
    // the local service: writes the reply and closes at once (as an echo server's last write)
    const servicePort = await listen((s) => s.end(Buffer.alloc(size, 7)));
    // the channel: takes each chunk a little later, as an SSH channel under load does
    let got = 0;
    let resolve: (n: number) => void = () => undefined;
    const ended = new Promise<number>((r) => {
      resolve = r;
    });
    const channel = new Duplex({
      // a channel's window takes up to this much before it says wait
      writableHighWaterMark: 1 << 20,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        got += chunk.length;
        setTimeout(cb, 2);
      },
      final(cb) {
        resolve(got);
        cb();
      },
      destroy(_err, cb) {
        resolve(got);
        cb(null);
      },
    });
    const inner = connect({ host: "127.0.0.1", port: servicePort });
    splice(inner, channel, stats());
    expect(await ended).toBe(size);
  });

  it("an error on one side destroys both at once", async () => {
    const port = await listen((s) => s.on("data", () => undefined));
    const inner = connect({ host: "127.0.0.1", port });
    const outer = connect({ host: "127.0.0.1", port });
    await Promise.all([inner, outer].map((s) => new Promise((r) => s.once("connect", r))));
    const ended = new Promise<void>((r) => splice(inner, outer, stats(), () => r()));
    outer.write(Buffer.alloc(1 << 20));
    inner.destroy(new Error("boom"));
    await ended;
    expect(outer.destroyed).toBe(true);
  });
});
