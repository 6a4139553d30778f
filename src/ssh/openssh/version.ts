/** The version of the user's `ssh`, checked against what the openssh transport uses. */
import { SidecarError } from "../../errors.js";
import { runSsh } from "./run.js";

/**
 * The oldest OpenSSH the transport works with: 7.6 (October 2017) for
 * `StrictHostKeyChecking accept-new`; the rest is older: `ssh -G` (6.8), remote forwards to a
 * Unix socket (6.7), `-O forward` printing the port the server chose for `-R 0` and `-O cancel`
 * (6.0), ControlPersist (5.6).
 */
export const MIN_OPENSSH = { major: 7, minor: 6 } as const;

/** Prompts through an askpass program need SSH_ASKPASS_REQUIRE=force (8.4). */
export const MIN_OPENSSH_ASKPASS = { major: 8, minor: 4 } as const;

export interface SshVersion {
  /** what `ssh -V` printed, e.g. `OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19 27 Jan 2026` */
  text: string;
  major: number;
  minor: number;
}

/** The OpenSSH version in `ssh -V`'s output, if it is OpenSSH. */
export function parseSshVersion(text: string): SshVersion | undefined {
  const m = /\bOpenSSH_(\d+)\.(\d+)/.exec(text);
  if (!m) return undefined;
  return { text: text.trim().split(/\r?\n/)[0]!, major: Number(m[1]), minor: Number(m[2]) };
}

export function atLeast(v: SshVersion, min: { major: number; minor: number }): boolean {
  return v.major > min.major || (v.major === min.major && v.minor >= min.minor);
}

/** Refuse what the transport cannot use: not OpenSSH, OpenSSH for Windows, or too old. */
export function checkSshVersion(
  sshPath: string,
  printed: string,
  min: { major: number; minor: number } = MIN_OPENSSH,
  what = "the openssh transport",
): SshVersion {
  const v = parseSshVersion(printed);
  const shown = printed.trim().split(/\r?\n/)[0] ?? "";
  const data = { ssh: sshPath, version: shown };
  if (/OpenSSH_for_Windows/i.test(printed))
    throw new SidecarError(
      "SSH_CONFIG",
      `\`${sshPath}\` is OpenSSH for Windows (${shown}), which has no ControlMaster; ${what} needs one. Use the ssh2 transport.`,
      { data },
    );
  if (!v)
    throw new SidecarError(
      "SSH_CONFIG",
      `\`${sshPath} -V\` printed \`${shown}\`: not OpenSSH, which ${what} needs (its ControlMaster). Use the ssh2 transport, or put OpenSSH's ssh first on PATH.`,
      { data },
    );
  if (!atLeast(v, min))
    throw new SidecarError(
      "SSH_CONFIG",
      `\`${sshPath}\` is OpenSSH ${v.major}.${v.minor} (${shown}); ${what} needs OpenSSH ${min.major}.${min.minor} or newer. Update OpenSSH or use the ssh2 transport.`,
      { data },
    );
  return v;
}

const versions = new Map<string, Promise<SshVersion>>();

/** `ssh -V`, checked (once per binary; a failure is not remembered). */
export function sshVersion(sshPath: string): Promise<SshVersion> {
  let p = versions.get(sshPath);
  if (!p) {
    p = runSsh(sshPath, ["-V"], { timeoutMs: 10_000 }).then((r) =>
      checkSshVersion(sshPath, `${r.stderr}${r.stdout}`),
    );
    versions.set(sshPath, p);
    p.catch(() => versions.delete(sshPath));
  }
  return p;
}
