import { describe, expect, it } from "vitest";
import {
  ByteReader,
  checkGreeting,
  command,
  COMMAND,
  encodeMessage,
  greeting,
  LONG,
  MORE,
  parseCommand,
  parseProperties,
  properties,
} from "../../../src/rpc/zmtp/wire.js";

/** Every frame of `wire` read back after pushing it in pieces of `step` bytes. */
function readAll(
  wire: Buffer,
  step: number,
  maxBytes = 1 << 20,
): Array<{ flags: number; body: string }> {
  const r = new ByteReader();
  const out: Array<{ flags: number; body: string }> = [];
  for (let at = 0; at < wire.length; at += step) {
    r.push(wire.subarray(at, at + step));
    for (let f = r.frame(maxBytes); f; f = r.frame(maxBytes))
      out.push({ flags: f.flags, body: f.body.toString("latin1") });
  }
  return out;
}

describe("ZMTP wire", () => {
  it("reads frames back whatever the chunking, short and long ones", () => {
    const parts = [
      Buffer.from("<PSC|MSG>"),
      Buffer.alloc(0),
      Buffer.alloc(255, "a"),
      Buffer.alloc(256, "b"),
      Buffer.alloc(70_000, "c"),
    ];
    const wire = encodeMessage(parts);
    const want = parts.map((p, i) => ({
      flags: (i < parts.length - 1 ? MORE : 0) | (p.length > 255 ? LONG : 0),
      body: p.toString("latin1"),
    }));
    for (const step of [1, 2, 3, 7, 255, 256, 4096, wire.length])
      expect(readAll(wire, step)).toEqual(want);
  });

  it("refuses a frame over the size limit from its header, before its body arrives", () => {
    const r = new ByteReader();
    r.push(encodeMessage([Buffer.alloc(300)]).subarray(0, 9));
    expect(() => r.frame(299)).toThrow(/300 bytes is over the limit of 299/);
    const huge = Buffer.from([LONG, 0xff, 0, 0, 0, 0, 0, 0, 0]);
    const r2 = new ByteReader();
    r2.push(huge);
    expect(() => r2.frame(1 << 20)).toThrow(/over the limit/);
  });

  it("refuses reserved flag bits", () => {
    const r = new ByteReader();
    r.push(Buffer.from([0x08, 0]));
    expect(() => r.frame(100)).toThrow(/reserved bits/);
  });

  it("takes and peeks across chunks", () => {
    const r = new ByteReader();
    expect(r.peek()).toBeUndefined();
    r.push(Buffer.from("ab"));
    r.push(Buffer.from("cd"));
    expect(r.take(3)?.toString()).toBe("abc");
    expect(r.peek()).toBe("d".charCodeAt(0));
    expect(r.take(2)).toBeUndefined();
    r.push(Buffer.from("e"));
    expect(r.take(2)?.toString()).toBe("de");
  });

  it("checks a greeting: ours passes; ZMTP 1.0, version 2 and other mechanisms are named", () => {
    expect(checkGreeting(greeting())).toBeUndefined();
    const old = greeting();
    old[9] = 0x7e;
    expect(checkGreeting(old)).toMatch(/ZMTP 1.0/);
    const v2 = greeting();
    v2[10] = 2;
    expect(checkGreeting(v2)).toMatch(/ZMTP version 2/);
    const curve = greeting();
    curve.write("CURVE", 12, "latin1");
    expect(checkGreeting(curve)).toMatch(/mechanism "CURVE"/);
  });

  it("builds READY with properties that parse back (names without case), and refuses truncated ones", () => {
    const frame = command(
      "READY",
      properties({ "Socket-Type": "DEALER", Identity: Buffer.from([1, 2]) }),
    );
    expect(frame[0]).toBe(COMMAND);
    const cmd = parseCommand(frame.subarray(2));
    expect(cmd?.name).toBe("READY");
    const props = parseProperties(cmd!.data);
    expect(props?.get("socket-type")?.toString()).toBe("DEALER");
    expect([...props!.get("identity")!]).toEqual([1, 2]);
    expect(parseProperties(cmd!.data.subarray(0, cmd!.data.length - 1))).toBeUndefined();
    expect(parseCommand(Buffer.from([9, 65]))).toBeUndefined();
  });
});
