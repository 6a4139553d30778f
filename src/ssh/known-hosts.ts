/**
 * known_hosts with OpenSSH semantics: plain, wildcard, negated and hashed (`|1|salt|hash`)
 * host patterns, the `[host]:port` form, @revoked lines, and accept-new recording.
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";

export interface KnownKey {
  file: string;
  line: number;
  keyType: string;
  /** base64 of the key blob */
  key: string;
  marker?: "revoked" | "cert-authority";
}

export type HostKeyLookup =
  | { status: "match"; entry: KnownKey }
  | { status: "revoked"; entry: KnownKey }
  | { status: "mismatch"; entries: KnownKey[] }
  | { status: "unknown" };

/** `SHA256:...` as `ssh-keygen -lf` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The key type named at the start of an SSH public key blob. */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return "unknown";
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString("latin1");
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith("|1|")) {
    const [, , salt, hash] = pattern.split("|");
    if (!salt || !hash) return false;
    const h = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return h === hash;
  }
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
    "i",
  );
  return re.test(name);
}

/** OpenSSH host-pattern list semantics: any negated match excludes, else any positive match. */
export function hostMatches(patterns: string, names: string[]): boolean {
  let positive = false;
  for (const raw of patterns.split(",")) {
    const negated = raw.startsWith("!");
    const p = negated ? raw.slice(1) : raw;
    if (names.some((n) => patternMatches(p, n))) {
      if (negated) return false;
      positive = true;
    }
  }
  return positive;
}

/** Every entry in `files` that applies to one of `names` (missing files are skipped). */
export function readKnownKeys(files: string[], names: string[]): KnownKey[] {
  const out: KnownKey[] = [];
  for (const file of files) {
    if (file === "/dev/null" || !existsSync(file)) continue;
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    text.split(/\r?\n/).forEach((rawLine, i) => {
      const line = rawLine.trim();
      if (line === "" || line.startsWith("#")) return;
      const fields = line.split(/\s+/);
      let marker: KnownKey["marker"];
      if (fields[0]!.startsWith("@")) {
        const m = fields.shift()!;
        if (m === "@revoked") marker = "revoked";
        else if (m === "@cert-authority") marker = "cert-authority";
        else return;
      }
      const [hosts, keyType, key] = fields;
      if (!hosts || !keyType || !key) return;
      if (!hostMatches(hosts, names)) return;
      const entry: KnownKey = { file, line: i + 1, keyType, key };
      if (marker) entry.marker = marker;
      out.push(entry);
    });
  }
  return out;
}

/** Look a presented host key up. A match on any line wins, as in OpenSSH. */
export function lookupHostKey(files: string[], names: string[], blob: Buffer): HostKeyLookup {
  const b64 = blob.toString("base64");
  const entries = readKnownKeys(files, names);
  const revoked = entries.find((e) => e.marker === "revoked" && e.key === b64);
  if (revoked) return { status: "revoked", entry: revoked };
  const plain = entries.filter((e) => e.marker === undefined);
  const match = plain.find((e) => e.key === b64);
  if (match) return { status: "match", entry: match };
  if (plain.length > 0) return { status: "mismatch", entries: plain };
  return { status: "unknown" };
}

/** Append a host key line (hashed when `hash`), creating the file 0600 and its directory 0700. */
export function recordHostKey(file: string, name: string, blob: Buffer, hash: boolean): void {
  if (file === "/dev/null") return;
  let host = name;
  if (hash) {
    const salt = randomBytes(20);
    host = `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
  }
  const dir = dirname(file);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fresh = !existsSync(file);
  const needsNewline =
    !fresh && !readFileSync(file, "utf8").endsWith("\n") && readFileSync(file).length > 0;
  appendFileSync(
    file,
    `${needsNewline ? "\n" : ""}${host} ${keyTypeOf(blob)} ${blob.toString("base64")}\n`,
    { mode: 0o600 },
  );
  if (fresh) chmodSync(file, 0o600);
}

/** Host key algorithms to offer first so that the server presents a key we already know. */
export function preferredHostKeyAlgorithms(knownTypes: string[], defaults: string[]): string[] {
  const expand = (t: string): string[] =>
    t === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [t];
  const first = knownTypes.flatMap(expand).filter((a) => defaults.includes(a));
  return [...new Set([...first, ...defaults])];
}
