/**
 * One SSH handshake per hop with ssh2: algorithms (AES-GCM first where the CPU has AES), the
 * host-key policy, agent/key auth, keepalive; ProxyJump hops chained through forwardOut.
 */
import { lookup } from "node:dns/promises";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { arch } from "node:os";
import type { Duplex } from "node:stream";
import type { Client, ConnectConfig } from "ssh2";
import { SidecarError } from "../../errors.js";
import type { AuthOptions } from "../auth.js";
import type { ResolvedHost } from "../config.js";
import { checkHostKey, knownTypes } from "../host-key.js";
import { preferredHostKeyAlgorithms } from "../known-hosts.js";
import { AuthFlow, type HopPrompts } from "./interactive.js";
import { openJumpSession } from "./jump-session.js";
import { ssh2 } from "./lazy.js";
import { ssh2CannotReach } from "./unsupported.js";

const DEFAULT_HOST_KEY_ALGOS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

/** True when the CPU has AES instructions (then AES-GCM beats chacha20-poly1305). */
export function cpuHasAes(): boolean {
  try {
    const info = readFileSync("/proc/cpuinfo", "utf8");
    return /^(flags|Features)\s*:.*\baes\b/m.test(info);
  } catch {
    return arch() === "x64" || arch() === "arm64";
  }
}

let cipherCache: string[] | undefined;
/** Cipher preference: AES-GCM first with AES-NI, chacha20-poly1305 first without. */
export function cipherList(): string[] {
  if (cipherCache) return cipherCache;
  const gcm = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"];
  const chacha = ["chacha20-poly1305@openssh.com"];
  const ctr = ["aes128-ctr", "aes192-ctr", "aes256-ctr"];
  cipherCache = cpuHasAes() ? [...gcm, ...chacha, ...ctr] : [...chacha, ...gcm, ...ctr];
  return cipherCache;
}

export interface HopSettings {
  auth?: AuthOptions;
  /** keepalive interval in ms (0 = off) */
  keepaliveMs: number;
  keepaliveCount: number;
  /** handshake timeout in ms (the time a question waits for the user is not counted) */
  readyTimeoutMs: number;
  log?: (msg: string, data?: Record<string, unknown>) => void;
  /** how questions of the server (codes, passwords, passphrases) reach the user */
  prompts?: HopPrompts;
}

export interface Hop {
  host: ResolvedHost;
  client: Client;
  serverVersion: string;
  fingerprint: string;
  cipher?: string;
}

function connectError(
  host: ResolvedHost,
  err: NodeJS.ErrnoException,
  via?: ResolvedHost,
): SidecarError {
  const where = `${host.hostName}:${host.port} (target \`${host.target}\`${via ? `, through jump host \`${via.target}\`` : ""})`;
  const code = err.code ?? "";
  let why = err.message;
  if (code === "ECONNREFUSED")
    why = "connection refused: is sshd running there and is the port right?";
  else if (code === "ENOTFOUND" || code === "EAI_AGAIN") why = "the host name does not resolve";
  else if (code === "ETIMEDOUT" || /Timed out/i.test(err.message))
    why = `no answer in time (${err.message})`;
  else if (code === "EHOSTUNREACH" || code === "ENETUNREACH") why = "no route to the host";
  return new SidecarError("SSH_CONNECT", `Cannot connect to ${where}: ${why}`, {
    cause: err,
    data: { target: host.target, host: host.hostName, port: host.port, errno: code || undefined },
  });
}

/** Fail early and clearly when the first hop's name neither is an alias nor resolves. */
export async function checkResolvable(host: ResolvedHost): Promise<void> {
  if (isIP(host.hostName)) return;
  try {
    await lookup(host.hostName);
  } catch (err) {
    if (!host.matchedSection && host.hostName === host.alias) {
      throw new SidecarError(
        "SSH_CONFIG",
        `Unknown host \`${host.alias}\`: there is no \`Host ${host.alias}\` entry in ${host.configFile ?? "the ssh config (none found: ~/.ssh/config does not exist)"} and the name does not resolve. ` +
          `Check the spelling, add a Host entry, or set $PARSL_SIDECAR_SSH_CONFIG.`,
        { cause: err, data: { target: host.target } },
      );
    }
    throw connectError(host, err as NodeJS.ErrnoException);
  }
}

/** Handshake and authenticate one hop, directly or over `sock` (a channel of the previous hop). */
export function connectHop(
  host: ResolvedHost,
  settings: HopSettings,
  sock?: Duplex,
  via?: ResolvedHost,
): Promise<Hop> {
  return new Promise<Hop>((resolve, reject) => {
    const client = new (ssh2().Client)();
    let refused: SidecarError | undefined;
    let fp = "";
    let cipher: string | undefined;
    let settled = false;
    let asking = false;
    const ended = new AbortController();
    // ssh2's readyTimeout would also count the minutes a user takes to type a code: this clock
    // stops while a question is open and starts afresh once it is answered
    let clock: NodeJS.Timeout | undefined;
    const startClock = (): void => {
      clearTimeout(clock);
      clock = setTimeout(
        () =>
          fail(
            connectError(
              host,
              Object.assign(
                new Error(
                  `timed out after ${settings.readyTimeoutMs} ms waiting for the SSH handshake`,
                ),
                { code: "ETIMEDOUT" },
              ),
              via,
            ),
          ),
        settings.readyTimeoutMs,
      );
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(clock);
      ended.abort(err);
      client.removeAllListeners();
      client.on("error", () => undefined);
      client.end();
      reject(err);
    };
    const flow = new AuthFlow(
      host,
      settings.auth,
      settings.prompts,
      {
        asking: (open) => {
          asking = open;
          if (open) clearTimeout(clock);
          else if (!settled) startClock();
        },
        fail,
      },
      ended.signal,
    );
    client.on("handshake", (n: { cs?: { cipher?: string } }) => {
      cipher = n.cs?.cipher;
    });
    client.on("banner", (message: string) => flow.noteBanner(message));
    client.on("error", (err: Error & { level?: string; code?: string }) => {
      if (refused) return fail(refused);
      if (err.level === "client-authentication") return fail(flow.failure(err));
      return fail(connectError(host, err, via));
    });
    client.on("close", () =>
      fail(
        refused ??
          connectError(
            host,
            Object.assign(
              new Error(
                asking
                  ? "the server closed the connection while its question waited for an answer (sshd's LoginGraceTime, 120 s by default, ran out)"
                  : "the server closed the connection during the handshake",
              ),
              { code: "ECONNRESET" },
            ),
            via,
          ),
      ),
    );
    client.once("ready", () => {
      if (settled) return;
      settled = true;
      clearTimeout(clock);
      client.removeAllListeners("close");
      client.removeAllListeners("error");
      // small request/reply messages (Parsl's tasks, RPC) must not wait for Nagle's algorithm
      client.setNoDelay(true);
      const hop: Hop = {
        host,
        client,
        serverVersion: (client as unknown as { _remoteVer?: string })._remoteVer ?? "",
        fingerprint: fp,
      };
      if (cipher) hop.cipher = cipher;
      resolve(hop);
    });
    const cfg: ConnectConfig = {
      username: host.user,
      authHandler: flow.handler as unknown as ConnectConfig["authHandler"],
      hostVerifier: (key: Buffer) => {
        const d = checkHostKey(host, key);
        fp = d.fingerprint;
        if (d.note) settings.log?.(d.note, { target: host.target });
        if (!d.ok) refused = d.error;
        return d.ok;
      },
      algorithms: {
        cipher: cipherList() as NonNullable<ConnectConfig["algorithms"]>["cipher"],
        serverHostKey: preferredHostKeyAlgorithms(
          knownTypes(host),
          DEFAULT_HOST_KEY_ALGOS,
        ) as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"],
      },
      readyTimeout: 0,
      keepaliveInterval: settings.keepaliveMs,
      keepaliveCountMax: settings.keepaliveCount,
    };
    if (sock) cfg.sock = sock as ConnectConfig["sock"];
    else {
      cfg.host = host.hostName;
      cfg.port = host.port;
    }
    try {
      startClock();
      client.connect(cfg);
    } catch (err) {
      fail(connectError(host, err as Error, via));
    }
  });
}

/** Open a channel from `hop` to the next hop's sshd. */
function forwardTo(hop: Hop, next: ResolvedHost): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    hop.client.forwardOut("127.0.0.1", 0, next.hostName, next.port, (err, ch) => {
      if (err) {
        reject(
          new SidecarError(
            "SSH_CONNECT",
            `Jump host \`${hop.host.target}\` could not open a connection to ${next.hostName}:${next.port} (for \`${next.target}\`): ${err.message}`,
            {
              cause: err,
              data: { jump: hop.host.target, target: next.target },
            },
          ),
        );
      } else resolve(ch);
    });
  });
}

/** Connect every hop in order; the last one is the target. Closes the earlier hops on failure. */
export async function connectChain(chain: ResolvedHost[], settings: HopSettings): Promise<Hop[]> {
  const hops: Hop[] = [];
  try {
    for (const h of chain) {
      const cannot = ssh2CannotReach(h);
      if (cannot) throw cannot;
    }
    await checkResolvable(chain[0]!);
    for (let i = 0; i < chain.length; i++) {
      const prev = hops[i - 1];
      const sock = prev ? await forwardTo(prev, chain[i]!) : undefined;
      const hop = await connectHop(chain[i]!, settings, sock, prev?.host);
      hops.push(hop);
      if (i < chain.length - 1) openJumpSession(hop.client);
    }
    return hops;
  } catch (err) {
    for (const h of hops.reverse()) h.client.end();
    throw err;
  }
}
