/**
 * The signed envelope of the wire protocol (docs/protocol.md): frames, MessagePack header and
 * body, HMAC-SHA256 over both, checked in constant time.
 */
import * as crypto from "node:crypto";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
// msgpackr/pack: msgpackr without its optional native string extractor, whose loading (a native
// addon looked up by libc) cost ~10 ms of every start; it only pays off for large messages
import { Packr } from "msgpackr/pack";

export const PROTOCOL_VERSION = 1;
export const SIGNATURE_SCHEME = "hmac-sha256";
export const DELIMITER = Buffer.from("<PSC|MSG>");
/** Optional protocol features this side speaks, listed in the connection file (docs/protocol.md). */
export const FEATURES = ["batch"] as const;
/** At most this many messages in one batch (a larger batch is dropped as malformed). */
export const MAX_BATCH = 4096;

export type MessageType = "request" | "reply" | "progress" | "event" | "batch";

export interface Header {
  /** protocol version */
  v: number;
  /** message id, unique per sender */
  id: string;
  type: MessageType;
  /** the method called (requests) */
  method?: string;
  /** the id of the request this answers (replies, progress) */
  reply_to?: string;
  /** sender's clock, milliseconds since the epoch */
  ts: number;
}

// Plain maps and no records: the Python side decodes with the stock msgpack library. Like JSON,
// an `undefined` property is left out and an `undefined` array item is nil (msgpackr would
// otherwise write an extension type other decoders do not know). skipValues is untyped.
const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  variableMapSize: true,
  int64AsType: "number",
  encodeUndefinedAsNil: true,
  ...{ skipValues: [undefined] },
});

export function encode(value: unknown): Buffer {
  return packr.pack(value);
}

export function decode(buf: Buffer): unknown {
  return packr.unpack(buf);
}

// crypto.hash (Node >= 20.12): one native call per SHA-256, no Hmac object and no stream.
// Looked up at run time so that an older Node still loads this module (and uses createHmac).
const oneShot = (crypto as { hash?: typeof crypto.hash }).hash;
// Messages up to this size are signed in a buffer kept per key; larger ones stream through
// createHmac instead of being copied.
const SCRATCH_BYTES = 16 * 1024;

/** Per key: buffers that start with the key XORed with HMAC's inner and outer pads (RFC 2104). */
interface Keyed {
  inner: Buffer;
  outer: Buffer;
}
const keyedByKey = new WeakMap<Buffer, Keyed>();

function keyed(key: Buffer): Keyed {
  let st = keyedByKey.get(key);
  if (!st) {
    const k = key.length > 64 ? createHash("sha256").update(key).digest() : key;
    st = { inner: Buffer.alloc(SCRATCH_BYTES, 0x36), outer: Buffer.alloc(64 + 32, 0x5c) };
    for (let i = 0; i < k.length; i++) {
      st.inner[i]! ^= k[i]!;
      st.outer[i]! ^= k[i]!;
    }
    keyedByKey.set(key, st);
  }
  return st;
}

/**
 * HMAC over the header length (uint32 BE), the header and the body, as lowercase hex bytes.
 *
 * A small message is hashed as HMAC is defined, H(outer pad || H(inner pad || message)), with
 * two one-shot SHA-256 calls over buffers kept per key: every message in both directions is
 * signed or checked, and an Hmac object per message cost twice as much (bench rpc). The same
 * bytes as createHmac (tested).
 */
export function sign(key: Buffer, header: Buffer, body: Buffer): Buffer {
  const n = 68 + header.length + body.length;
  if (oneShot === undefined || n > SCRATCH_BYTES) {
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(header.length, 0);
    return Buffer.from(
      createHmac("sha256", key).update(len).update(header).update(body).digest("hex"),
      "latin1",
    );
  }
  const { inner, outer } = keyed(key);
  inner.writeUInt32BE(header.length, 64);
  header.copy(inner, 68);
  body.copy(inner, 68 + header.length);
  // the inner digest as a "binary" (latin1) string, one char per byte, is written back as is:
  // Node 20's "buffer" output costs twice a string's
  outer.write(oneShot("sha256", inner.subarray(0, n), "binary"), 64, "latin1");
  return Buffer.from(oneShot("sha256", outer, "hex"), "latin1");
}

export function verify(key: Buffer, signature: Buffer, header: Buffer, body: Buffer): boolean {
  const expected = sign(key, header, body);
  return signature.length === expected.length && timingSafeEqual(signature, expected);
}

/** Frames after the delimiter: signature, header, body. */
export function pack(key: Buffer, header: Header, body: unknown): [Buffer, Buffer, Buffer, Buffer] {
  const h = encode(header);
  const b = encode(body);
  return [DELIMITER, sign(key, h, b), h, b];
}

export type Unpacked =
  | { ok: true; header: Header; body: unknown; signature: string }
  | { ok: false; reason: "framing" | "signature" | "decode"; detail: string };

/** Check and decode the frames that follow the routing identity (if any). */
export function unpack(key: Buffer, frames: Buffer[]): Unpacked {
  const at = frames.findIndex((f) => f.equals(DELIMITER));
  if (at < 0 || frames.length !== at + 4)
    return {
      ok: false,
      reason: "framing",
      detail: `expected delimiter + 3 frames, got ${frames.length} frames`,
    };
  const [sig, h, b] = [frames[at + 1]!, frames[at + 2]!, frames[at + 3]!];
  if (!verify(key, sig, h, b))
    return { ok: false, reason: "signature", detail: "bad or missing signature" };
  let header: unknown;
  let body: unknown;
  try {
    header = decode(h);
    body = decode(b);
  } catch (err) {
    return { ok: false, reason: "decode", detail: `not MessagePack: ${(err as Error).message}` };
  }
  if (!isHeader(header))
    return { ok: false, reason: "decode", detail: "header lacks v, id, type or ts" };
  return { ok: true, header, body, signature: sig.toString("latin1") };
}

export function isHeader(h: unknown): h is Header {
  if (h === null || typeof h !== "object") return false;
  const o = h as Record<string, unknown>;
  return (
    typeof o.v === "number" &&
    typeof o.id === "string" &&
    typeof o.type === "string" &&
    typeof o.ts === "number"
  );
}
