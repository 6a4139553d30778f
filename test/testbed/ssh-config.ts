// Writes an ssh_config-style file (like ~/.ssh/config) for alias tests.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Sshd } from "./sshd.js";

export interface SshConfigEntry {
  /** The alias (`Host` pattern). */
  host: string;
  hostName?: string;
  port?: number;
  user?: string;
  identityFile?: string;
  proxyJump?: string;
  proxyCommand?: string;
  certificateFile?: string;
  userKnownHostsFile?: string;
  /** Any other options, written as `Key value`. */
  extra?: Record<string, string | number>;
}

/** Renders entries as ssh_config text. */
export function renderSshConfig(entries: SshConfigEntry[]): string {
  const blocks = entries.map((e) => {
    const opts: [string, string | number | undefined][] = [
      ["HostName", e.hostName],
      ["Port", e.port],
      ["User", e.user],
      ["IdentityFile", e.identityFile],
      ["ProxyJump", e.proxyJump],
      ["ProxyCommand", e.proxyCommand],
      ["CertificateFile", e.certificateFile],
      ["UserKnownHostsFile", e.userKnownHostsFile],
      ...Object.entries(e.extra ?? {}),
    ];
    const lines = opts.filter(([, v]) => v !== undefined).map(([k, v]) => `    ${k} ${v}`);
    return [`Host ${e.host}`, ...lines].join("\n");
  });
  return `${blocks.join("\n\n")}\n`;
}

/** Writes `dir/ssh_config` (or `dir/<fileName>`) and returns its path. */
export function writeSshConfig(
  dir: string,
  entries: SshConfigEntry[],
  fileName = "ssh_config",
): string {
  const path = join(dir, fileName);
  writeFileSync(path, renderSshConfig(entries), { mode: 0o600 });
  return path;
}

/** An entry that reaches `sshd` under `alias` with its key and known_hosts. */
export function sshdEntry(
  alias: string,
  sshd: Sshd,
  extra: Partial<SshConfigEntry> = {},
): SshConfigEntry {
  return {
    host: alias,
    hostName: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.keyPath,
    userKnownHostsFile: sshd.knownHostsPath,
    extra: { IdentitiesOnly: "yes", StrictHostKeyChecking: "yes", BatchMode: "yes" },
    ...extra,
  };
}
