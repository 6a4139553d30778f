// Slabs (src/tunnels/slabs.ts) and the service socket that reads into them (service.ts), over
// real loopback sockets: every byte arrives while chunks are held, a slab is read into again only
// after all its chunks were given back, and a durable stream gives one back when the relay
// acknowledges it.
import { once } from "node:events";
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { DurableStream } from "../../src/tunnels/durable-stream.js";
import { connectService } from "../../src/tunnels/service.js";
import { freeSlabs, giveBack, SLAB_BYTES, takeSlab } from "../../src/tunnels/slabs.js";
import { closeListeners, listen, pattern } from "./helpers.js";

afterEach(closeListeners);

/** Write `data` in pieces of 1 byte to 200 KiB, with pauses, so that reads come short and long. */
async function dribble(s: Socket, data: Buffer): Promise<void> {
  const sizes = [1, 100, 3000, 4096, 9000, 65536, 200_000];
  let off = 0;
  for (let i = 0; off < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - off);
    if (!s.write(data.subarray(off, off + n))) await once(s, "drain");
    off += n;
    if (i % 5 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  s.end();
}

/** Connect with slabs and hold every chunk until the server has ended. */
async function readHeld(port: number): Promise<Buffer[]> {
  const sock = connectService("127.0.0.1", port, true);
  const chunks: Buffer[] = [];
  sock.on("data", (b: Buffer) => chunks.push(b));
  await once(sock, "end");
  sock.destroy();
  return chunks;
}

const isSlab = (b: Buffer): boolean => b.buffer.byteLength === SLAB_BYTES;

describe("slabs", () => {
  it("a socket read into slabs delivers every byte in order while its chunks are held", async () => {
    const data = pattern(8 << 20);
    const port = await listen((s) => void dribble(s, data));
    const chunks = await readHeld(port);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    // every chunk is a view of a slab; reads follow one another in a slab, never overlapping
    expect(chunks.every(isSlab)).toBe(true);
    const bySlab = new Map<ArrayBufferLike, Buffer[]>();
    for (const c of chunks) bySlab.set(c.buffer, [...(bySlab.get(c.buffer) ?? []), c]);
    expect(bySlab.size).toBeLessThan(chunks.length); // short reads share a slab
    for (const views of bySlab.values())
      for (let i = 1; i < views.length; i++)
        expect(views[i]!.byteOffset).toBe(views[i - 1]!.byteOffset + views[i - 1]!.length);
    for (const c of chunks) giveBack(c);
  });

  it("a slab is read into again only once every chunk of it is back; other buffers are not taken", async () => {
    const data = pattern(1 << 20);
    const port = await listen((s) => void dribble(s, data));
    const chunks = await readHeld(port);
    while (freeSlabs() > 0) takeSlab(); // start from an empty free list
    giveBack(Buffer.alloc(SLAB_BYTES)); // not a slab
    expect(freeSlabs()).toBe(0);
    // keep one chunk of a slab that holds several; give back every other chunk
    const shared = chunks.find((c) => chunks.filter((d) => d.buffer === c.buffer).length > 1)!;
    for (const c of chunks) if (c !== shared) giveBack(c);
    const free = new Set<ArrayBufferLike>();
    while (freeSlabs() > 0) free.add(takeSlab().buffer);
    expect(free.size).toBeGreaterThan(0);
    expect(free.has(shared.buffer)).toBe(false);
    for (const b of free) giveBack(Buffer.from(b, 0, SLAB_BYTES));
    giveBack(shared);
    expect(freeSlabs()).toBe(free.size + 1);
    // and the next connection reads into the slabs given back
    const next = await readHeld(port);
    expect(Buffer.concat(next).equals(data)).toBe(true);
    expect(next.some((c) => c.buffer === shared.buffer || free.has(c.buffer))).toBe(true);
    for (const c of next) giveBack(c);
  });

  it("a durable stream gives a slab back when the relay acknowledges its bytes, not before", async () => {
    const stream = new DurableStream(
      "7",
      10_000,
      () => undefined,
      () => true,
    );
    // the relay's side of the channel: collects the frames the stream writes
    let wire = Buffer.alloc(0);
    const port = await listen((s) =>
      s.on("data", (b: Buffer) => (wire = Buffer.concat([wire, b]))),
    );
    const ch = connectService("127.0.0.1", port, false);
    await once(ch, "connect");
    stream.attach(ch, 0);
    while (freeSlabs() > 0) takeSlab();
    const slab = takeSlab();
    const chunk = slab.subarray(0, 50_000);
    pattern(50_000).copy(chunk);
    stream.write(chunk);
    await expect.poll(() => wire.length, { timeout: 5000 }).toBe(5 + 50_000);
    // one frame: D, the length, the payload as written
    expect(wire[0]).toBe(0x44);
    expect(wire.readUInt32BE(1)).toBe(50_000);
    expect(wire.subarray(5).equals(pattern(50_000))).toBe(true);
    stream.acknowledged(20_000);
    expect(freeSlabs()).toBe(0); // part of it is still the relay's to receive
    stream.acknowledged(50_000);
    expect(freeSlabs()).toBe(1);
    expect(takeSlab().buffer).toBe(slab.buffer);
    stream.destroy();
  });
});
