/**
 * What OpenSSH makes of a target: `ssh -G` (its whole config: ~/.ssh/config or -F, Include,
 * Match, /etc/ssh/ssh_config), and the arguments that name the target to every ssh call.
 */
import { existsSync, readFileSync } from "node:fs";
import { arch, userInfo } from "node:os";
import { join } from "node:path";
import { SidecarError } from "../../errors.js";
import { loadConfig, resolveTarget as parseConfigFor } from "../config.js";
import { parseTarget } from "../target.js";
import { messageLines, runSsh } from "./run.js";

export interface OpenSshTarget {
  target: string;
  /** `-F FILE` when a config file was given (else ssh reads ~/.ssh/config and /etc/ssh/ssh_config) */
  configPath?: string;
  /** `[-F FILE] [-l USER] [-p PORT]`: the target's own user@ and :port win, as with `ssh` */
  options: string[];
  /** the host part of the target: an alias or a name */
  host: string;
}

export function openSshTarget(target: string, configPath?: string): OpenSshTarget {
  const p = parseTarget(target);
  const options = [
    ...(configPath ? ["-F", configPath] : []),
    ...(p.user ? ["-l", p.user] : []),
    ...(p.port ? ["-p", String(p.port)] : []),
  ];
  return configPath
    ? { target, configPath, options, host: p.host }
    : { target, options, host: p.host };
}

/** The settings of `ssh -G` the transport uses. */
export interface Resolved {
  hostName: string;
  port: number;
  user: string;
  /** ControlPath with its tokens expanded; undefined for `none` */
  controlPath?: string;
  proxyJump: string[];
  proxyCommand?: string;
  /** seconds, 0 = off */
  serverAliveInterval: number;
  serverAliveCountMax: number;
  /** seconds, undefined = none */
  connectTimeout?: number;
  /** as ssh -G prints it: true, false, ask, accept-new */
  strictHostKeyChecking: string;
  /** whether the user's config file names StrictHostKeyChecking for the target */
  strictHostKeyCheckingSet: boolean;
  ciphers: string[];
  userKnownHostsFiles: string[];
  /** `BatchMode yes` in the user's config: ssh asks no one */
  batchMode: boolean;
}

/** `ssh -G` output as key -> values (keys lower case, repeated keys kept in order). */
export function parseDashG(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^(\S+)\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const key = m[1]!.toLowerCase();
    const list = out.get(key) ?? [];
    list.push(m[2]!);
    out.set(key, list);
  }
  return out;
}

/** Whether the config file names StrictHostKeyChecking for the target (then it is the user's). */
function strictSetByUser(t: OpenSshTarget): boolean {
  const file = t.configPath ?? join(userInfo().homedir, ".ssh", "config");
  if (!existsSync(file)) return false;
  try {
    return parseConfigFor(t.target, loadConfig(file)).strictHostKeyCheckingExplicit;
  } catch {
    // a config our parser cannot read: leave the policy to OpenSSH
    return true;
  }
}

/** Run `ssh -G` for the target; a config OpenSSH refuses is SSH_CONFIG with its words. */
export async function resolveOpenSsh(sshPath: string, t: OpenSshTarget): Promise<Resolved> {
  const r = await runSsh(sshPath, ["-G", ...t.options, "--", t.host], { timeoutMs: 15_000 });
  if (r.code !== 0) {
    const said = messageLines(r.stderr).join("; ") || `exit code ${r.code}`;
    throw new SidecarError(
      "SSH_CONFIG",
      `OpenSSH cannot read the config for \`${t.target}\`${t.configPath ? ` (${t.configPath})` : ""}: ${said}`,
      { data: { target: t.target } },
    );
  }
  const g = parseDashG(r.stdout);
  const one = (k: string): string | undefined => g.get(k)?.[0];
  const num = (k: string, dflt: number): number => {
    const v = Number(one(k));
    return Number.isFinite(v) ? v : dflt;
  };
  const control = one("controlpath");
  const jump = one("proxyjump");
  const command = one("proxycommand");
  const timeout = one("connecttimeout");
  const out: Resolved = {
    hostName: one("hostname") ?? t.host,
    port: num("port", 22),
    user: one("user") ?? userInfo().username,
    proxyJump: jump && jump !== "none" ? jump.split(",").filter(Boolean) : [],
    serverAliveInterval: num("serveraliveinterval", 0),
    serverAliveCountMax: num("serveralivecountmax", 3),
    strictHostKeyChecking: (one("stricthostkeychecking") ?? "ask").toLowerCase(),
    strictHostKeyCheckingSet: strictSetByUser(t),
    ciphers: (one("ciphers") ?? "").split(",").filter(Boolean),
    userKnownHostsFiles: (g.get("userknownhostsfile") ?? []).flatMap((v) => v.split(/\s+/)),
    batchMode: one("batchmode")?.toLowerCase() === "yes",
  };
  if (control && control !== "none") out.controlPath = control;
  if (command && command !== "none") out.proxyCommand = command;
  if (timeout && /^\d+$/.test(timeout)) out.connectTimeout = Number(timeout);
  return out;
}

const defaultCiphers = new Map<string, Promise<string[]>>();

/** OpenSSH's own cipher list (no config file read), to tell whether anyone set Ciphers. */
export function builtinCiphers(sshPath: string): Promise<string[]> {
  let p = defaultCiphers.get(sshPath);
  if (!p) {
    p = runSsh(sshPath, ["-G", "-F", "none", "parsl-sidecar.invalid"], { timeoutMs: 15_000 }).then(
      (r) => (parseDashG(r.stdout).get("ciphers")?.[0] ?? "").split(",").filter(Boolean),
    );
    defaultCiphers.set(sshPath, p);
  }
  return p;
}

/** True when the CPU has AES instructions (then AES-GCM beats chacha20-poly1305). */
export function cpuHasAes(): boolean {
  try {
    return /^(flags|Features)\s*:.*\baes\b/m.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return arch() === "x64" || arch() === "arm64";
  }
}

/**
 * The Ciphers to pass when nobody set any (the list equals OpenSSH's own) and the CPU has AES:
 * the same list with AES-GCM first, as the ssh2 transport orders it (OpenSSH puts
 * chacha20-poly1305 first, ~1.4x slower here with AES-NI). Undefined: leave it to OpenSSH.
 */
export function preferredCiphers(configured: string[], builtin: string[]): string[] | undefined {
  if (!cpuHasAes() || builtin.length === 0 || configured.join(",") !== builtin.join(",")) return;
  const gcm = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"].filter((c) =>
    builtin.includes(c),
  );
  if (gcm.length === 0 || builtin[0] === gcm[0]) return;
  return [...gcm, ...builtin.filter((c) => !gcm.includes(c))];
}
