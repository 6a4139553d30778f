/** Parses an ssh target (`user@host[:port]`, `[v6]:port`, a ~/.ssh/config alias, `local`). */
import { SidecarError } from "../errors.js";

/** A target as written by the user, before ~/.ssh/config is applied. */
export interface ParsedTarget {
  /** the text as given */
  raw: string;
  /** user from `user@`, when given */
  user?: string;
  /** host name, address or alias (IPv6 without brackets) */
  host: string;
  /** port from `:port`, when given */
  port?: number;
}

const HOST_RE = /^[A-Za-z0-9_]([A-Za-z0-9_.%-]*[A-Za-z0-9_.])?$/;
const USER_RE = /^[A-Za-z0-9_.][A-Za-z0-9_.@\\-]*$/;

/** True for the target that means this machine. */
export function isLocalTarget(target: string): boolean {
  return target === "local";
}

function bad(raw: string, why: string): SidecarError {
  return new SidecarError(
    "INVALID_ARGUMENT",
    `Invalid ssh target \`${raw}\`: ${why}. Expected \`user@host[:port]\`, \`[ipv6]:port\`, or a Host alias from ~/.ssh/config.`,
    {
      data: { target: raw },
    },
  );
}

/** Parse a port given as text or number; throws INVALID_ARGUMENT naming `what` when out of range. */
export function parsePort(value: string | number, what: string): number {
  const n = typeof value === "number" ? value : /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected ${what} to be an integer 1-65535, got \`${String(value)}\` (${typeof value})`,
      { data: { port: value } },
    );
  }
  return n;
}

/**
 * Parse `[ssh://][user@]host[:port]`; `host` may be `[v6]` (with or without a port) or a bare
 * IPv6 address (no port then).
 * @example parseTarget("alice@hpc.example.org:2222") // {user: "alice", host: "hpc.example.org", port: 2222}
 */
export function parseTarget(raw: string): ParsedTarget {
  if (typeof raw !== "string" || raw.trim() === "") throw bad(String(raw), "it is empty");
  if (raw !== raw.trim() || /\s/.test(raw)) throw bad(raw, "it contains whitespace");
  let rest = raw.startsWith("ssh://") ? raw.slice(6).replace(/\/$/, "") : raw;
  if (rest.includes("/")) throw bad(raw, "it contains `/`");
  let user: string | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (user === "") throw bad(raw, "the user before `@` is empty");
    if (!USER_RE.test(user))
      throw bad(raw, `the user \`${user}\` contains characters a login name cannot have`);
  }
  let host: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw bad(raw, "`[` is not closed by `]`");
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) throw bad(raw, `unexpected \`${after}\` after \`]\``);
      portText = after.slice(1);
    }
    if (!/^[0-9A-Fa-f:.%a-zA-Z]+$/.test(host) || !host.includes(":"))
      throw bad(raw, `\`${host}\` is not an IPv6 address`);
  } else if ((rest.match(/:/g) ?? []).length > 1) {
    host = rest; // a bare IPv6 address
    if (!/^[0-9A-Fa-f:.%]+$/.test(host))
      throw bad(raw, `\`${host}\` is not an IPv6 address; write \`[addr]:port\` for a port`);
  } else {
    const colon = rest.indexOf(":");
    host = colon >= 0 ? rest.slice(0, colon) : rest;
    if (colon >= 0) portText = rest.slice(colon + 1);
    if (host === "") throw bad(raw, "the host is empty");
    if (!HOST_RE.test(host)) throw bad(raw, `\`${host}\` is not a valid host name`);
  }
  const out: ParsedTarget = { raw, host };
  if (user !== undefined) out.user = user;
  if (portText !== undefined) {
    if (portText === "") throw bad(raw, "the port after `:` is empty");
    try {
      out.port = parsePort(portText, `the port of ssh target \`${raw}\``);
    } catch (err) {
      throw new SidecarError("INVALID_ARGUMENT", (err as Error).message, { data: { target: raw } });
    }
  }
  return out;
}

/** `host` or `[host]:port` as OpenSSH writes it in known_hosts. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}
