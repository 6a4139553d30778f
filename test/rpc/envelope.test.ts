import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  DELIMITER,
  decode,
  encode,
  pack,
  sign,
  unpack,
  verify,
  type Header,
} from "../../src/rpc/envelope.js";

const key = randomBytes(32);
const header: Header = {
  v: 1,
  id: "abc-1",
  type: "request",
  method: "sidecar.ping",
  ts: Date.now(),
};

describe("envelope", () => {
  it("signs HMAC-SHA256 over uint32_be(len(header)) + header + body as lowercase hex", () => {
    const h = encode(header);
    const b = encode({ a: 1 });
    const len = Buffer.alloc(4);
    len.writeUInt32BE(h.length);
    const expected = createHmac("sha256", key)
      .update(Buffer.concat([len, h, b]))
      .digest("hex");
    expect(sign(key, h, b).toString("latin1")).toBe(expected);
    expect(verify(key, Buffer.from(expected), h, b)).toBe(true);
  });

  it("signs small messages (reused buffers), large ones (streamed) and long keys the same as createHmac", () => {
    const reference = (k: Buffer, h: Buffer, b: Buffer): string => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(h.length);
      return createHmac("sha256", k).update(len).update(h).update(b).digest("hex");
    };
    const longKey = randomBytes(100);
    const cases: Array<[Buffer, number, number]> = [
      [key, 0, 0],
      [key, 70, 20],
      [key, 100, 16 * 1024 - 68 - 100], // exactly fills the scratch buffer
      [key, 100, 16 * 1024 - 68 - 99], // one byte over: streamed
      [key, 200, 1 << 20],
      [longKey, 70, 20],
      [longKey, 70, 1 << 16],
    ];
    for (const [k, hl, bl] of cases) {
      const h = randomBytes(hl);
      const b = randomBytes(bl);
      expect(
        sign(k, h, b).toString("latin1"),
        `key ${k.length} B, header ${hl} B, body ${bl} B`,
      ).toBe(reference(k, h, b));
    }
    // a signature computed right after another (of a longer message) is not polluted by its bytes
    const small = [Buffer.from("h"), Buffer.from("b")] as const;
    sign(key, randomBytes(500), randomBytes(5000));
    expect(sign(key, ...small).toString("latin1")).toBe(reference(key, ...small));
  });

  it("packs and unpacks a message", () => {
    const frames = pack(key, header, { x: [1, "two", null] });
    expect(frames[0].equals(DELIMITER)).toBe(true);
    const msg = unpack(key, frames);
    expect(msg.ok).toBe(true);
    if (msg.ok) {
      expect(msg.header).toEqual(header);
      expect(msg.body).toEqual({ x: [1, "two", null] });
      expect(msg.signature).toHaveLength(64);
    }
  });

  it("finds the delimiter after a routing identity", () => {
    const msg = unpack(key, [Buffer.from("id"), ...pack(key, header, {})]);
    expect(msg.ok).toBe(true);
  });

  it("rejects a tampered header, a tampered body and another key", () => {
    const [d, s, h, b] = pack(key, header, { a: 1 });
    expect(unpack(key, [d, s, encode({ ...header, method: "sidecar.shutdown" }), b])).toMatchObject(
      { ok: false, reason: "signature" },
    );
    expect(unpack(key, [d, s, h, encode({ a: 2 })])).toMatchObject({
      ok: false,
      reason: "signature",
    });
    expect(unpack(randomBytes(32), [d, s, h, b])).toMatchObject({ ok: false, reason: "signature" });
    expect(unpack(key, [d, Buffer.from(""), h, b])).toMatchObject({
      ok: false,
      reason: "signature",
    });
  });

  it("rejects bad framing and undecodable or incomplete headers", () => {
    const [d, s, h, b] = pack(key, header, {});
    expect(unpack(key, [d, s, h])).toMatchObject({ ok: false, reason: "framing" });
    expect(unpack(key, [s, h, b])).toMatchObject({ ok: false, reason: "framing" });
    expect(unpack(key, [d, s, h, b, b])).toMatchObject({ ok: false, reason: "framing" });
    const bad = Buffer.from([0xc1, 0xc1]);
    expect(unpack(key, [d, sign(key, bad, b), bad, b])).toMatchObject({
      ok: false,
      reason: "decode",
    });
    const partial = encode({ v: 1 });
    expect(unpack(key, [d, sign(key, partial, b), partial, b])).toMatchObject({
      ok: false,
      reason: "decode",
    });
  });

  it("encodes undefined like JSON: dropped from maps, nil in arrays", () => {
    expect(decode(encode({ a: undefined, b: 1, c: [undefined] }))).toEqual({ b: 1, c: [null] });
  });
});
