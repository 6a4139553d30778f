/** Tar headers (ustar, with PAX records for long names and large sizes; GNU long names read). */

export const BLOCK = 512;

export interface TarHeader {
  name: string;
  type:
    | "file"
    | "directory"
    | "symlink"
    | "hardlink"
    | "pax"
    | "pax-global"
    | "gnu-longname"
    | "gnu-longlink"
    | "other";
  size: number;
  mode: number;
  mtime: number;
  linkname: string;
}

const TYPE_BY_FLAG: Record<string, TarHeader["type"]> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "5": "directory",
  "2": "symlink",
  "1": "hardlink",
  x: "pax",
  g: "pax-global",
  L: "gnu-longname",
  K: "gnu-longlink",
};

function octal(buf: Buffer, off: number, len: number, value: number): void {
  const s = value.toString(8).padStart(len - 1, "0");
  buf.write(s, off, len - 1, "ascii");
  buf[off + len - 1] = 0;
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return Buffer.from(`${len}${body}`, "utf8");
}

/** Header block(s) for a file or directory; a PAX header goes first when the name or size needs it. */
export function encodeHeader(h: {
  name: string;
  type: "file" | "directory";
  size: number;
  mode?: number;
  mtime?: number;
}): Buffer {
  const name = h.type === "directory" && !h.name.endsWith("/") ? `${h.name}/` : h.name;
  const nameBytes = Buffer.byteLength(name);
  const size = h.type === "directory" ? 0 : h.size;
  const records: Buffer[] = [];
  if (nameBytes > 100 || /[^\x20-\x7e]/.test(name)) records.push(paxRecord("path", name));
  if (size > 0o77777777777) records.push(paxRecord("size", String(size)));
  const blocks: Buffer[] = [];
  if (records.length > 0) {
    const body = Buffer.concat(records);
    blocks.push(rawHeader("PaxHeader", "x", body.length, 0o644, h.mtime ?? 0), pad(body));
  }
  blocks.push(
    rawHeader(
      nameBytes > 100 ? Buffer.from(name).subarray(0, 100).toString("latin1") : name,
      h.type === "directory" ? "5" : "0",
      size > 0o77777777777 ? 0 : size,
      h.mode ?? (h.type === "directory" ? 0o755 : 0o644),
      h.mtime ?? 0,
    ),
  );
  return Buffer.concat(blocks);
}

function rawHeader(name: string, flag: string, size: number, mode: number, mtime: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, "utf8");
  octal(b, 100, 8, mode);
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, size);
  octal(b, 136, 12, Math.max(0, Math.floor(mtime)));
  b.write("        ", 148, 8, "ascii");
  b.write(flag, 156, 1, "ascii");
  b.write("ustar\x0000", 257, 8, "latin1");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "ascii");
  return b;
}

/** Bytes an archive of these files and directories takes, as TarEncoder writes it. */
export function archiveLength(
  files: Array<{ path: string; size: number }>,
  dirs: string[],
): number {
  let n = 1024;
  for (const f of files) {
    const name = Buffer.byteLength(f.path);
    n +=
      name > 100 || /[^\x20-\x7e]/.test(f.path) || f.size > 0o77777777777
        ? encodeHeader({ name: f.path, type: "file", size: f.size }).length
        : BLOCK;
    n += f.size + padding(f.size);
  }
  for (const d of dirs) n += encodeHeader({ name: d, type: "directory", size: 0 }).length;
  return n;
}

/** Zero padding up to the next block boundary. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function pad(body: Buffer): Buffer {
  const p = padding(body.length);
  return p === 0 ? body : Buffer.concat([body, Buffer.alloc(p)]);
}

function readString(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  return b.toString("utf8", off, end < 0 || end > off + len ? off + len : end);
}

function readNumber(b: Buffer, off: number, len: number): number {
  if ((b[off]! & 0x80) !== 0) {
    // GNU base-256
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  const s = readString(b, off, len).trim();
  return s === "" ? 0 : parseInt(s, 8);
}

/** Parse one header block; undefined for an all-zero block (end of archive). Throws on a bad checksum. */
export function decodeHeader(b: Buffer): TarHeader | undefined {
  let sum = 0;
  let zero = true;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 32 : b[i]!;
    sum += c;
    if (b[i] !== 0) zero = false;
  }
  if (zero) return undefined;
  const stored = readNumber(b, 148, 8);
  if (stored !== sum)
    throw new Error("bad tar header checksum (not a tar stream, or it is corrupt)");
  const flag = String.fromCharCode(b[156]!);
  let name = readString(b, 0, 100);
  const magic = b.toString("latin1", 257, 263);
  if (magic.startsWith("ustar")) {
    const prefix = readString(b, 345, 155);
    if (prefix && magic === "ustar\0") name = `${prefix}/${name}`;
  }
  return {
    name,
    type: TYPE_BY_FLAG[flag] ?? "other",
    size: readNumber(b, 124, 12),
    mode: readNumber(b, 100, 8),
    mtime: readNumber(b, 136, 12),
    linkname: readString(b, 157, 100),
  };
}

/** Parse PAX records into a map. */
export function parsePax(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let off = 0;
  while (off < body.length) {
    const space = body.indexOf(32, off);
    if (space < 0) break;
    const len = parseInt(body.toString("ascii", off, space), 10);
    if (!Number.isFinite(len) || len <= 0) break;
    const rec = body.toString("utf8", space + 1, off + len - 1);
    const eq = rec.indexOf("=");
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    off += len;
  }
  return out;
}
