// A login node that asks for a one-time code after the key, as TACC, NCSA and ALCF do:
// `AuthenticationMethods publickey,keyboard-interactive` with PAM google-authenticator (TOTP).
// The PAM stack is a service of its own (pam-service.ts), the TOTP secret lives in the node's
// temp dir, and codes come from oathtool through test/fixtures/totp-code.sh.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join, resolve } from "node:path";
import { installPamService, type PamService } from "./pam-service.js";
import { requireBinary } from "./procs.js";
import { makeTempDir, removeTempDir } from "./registry.js";
import { sshdEntry, writeSshConfig } from "./ssh-config.js";
import { startSshd, type Sshd } from "./sshd.js";

const FIXTURES = resolve(import.meta.dirname, "../fixtures");
/** `totp-code.sh SECRET_FILE [--wrong]`: prints the current (or a rejected) code. */
export const TOTP_CODE = join(FIXTURES, "totp-code.sh");
/** An SSH_ASKPASS program that answers the code prompt (see askpassEnv). */
export const TOTP_ASKPASS = join(FIXTURES, "totp-askpass.sh");

/** Where PAM will load pam_google_authenticator.so from (any multiarch dir), if installed. */
function findPamModule(): string | undefined {
  for (const root of ["/lib", "/usr/lib", "/lib64", "/usr/lib64"]) {
    const dirs = existsSync(root) ? ["", ...readdirSync(root)] : [];
    for (const d of dirs) {
      const p = join(root, d, "security", "pam_google_authenticator.so");
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

export interface OtpNodeOptions {
  host?: string;
  netns?: string;
  /** More sshd_config lines; the node's own (PAM, AuthenticationMethods) come first and win. */
  extraConfig?: string[];
  /** Add `ControlPath <dir>/master.sock` to the alias, as a user with a ControlMaster has. */
  controlPath?: boolean;
}

export interface OtpNode {
  sshd: Sshd;
  /** Holds the TOTP secret, ssh_config and the control socket. */
  dir: string;
  /** ssh_config with `alias`: key, known_hosts, no BatchMode (which would forbid the prompt). */
  configPath: string;
  alias: string;
  /** google-authenticator secret file (mode 0600; first line the base32 secret). */
  secretPath: string;
  pamService: string;
  /** `ControlPath` named in the config, when asked for. */
  controlPath?: string;
  /** Commands that print the current code, and a code the node rejects. */
  codeCommand: string[];
  wrongCodeCommand: string[];
  askpassPath: string;
  /**
   * Environment for `ssh` so that the code is typed through SSH_ASKPASS (forced, no terminal).
   * `wrong`: the askpass answers a wrong code; `log`: file the askpass appends each prompt to.
   */
  askpassEnv(o?: { wrong?: boolean; log?: string }): Record<string, string>;
  code(): string;
  wrongCode(): string;
  stop(): Promise<void>;
}

/** RFC 4648 base32 without padding, as google-authenticator writes secrets. */
function base32(bytes: Buffer): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** Starts an sshd that wants the key and then a TOTP code (keyboard-interactive through PAM). */
export async function startOtpNode(opts: OtpNodeOptions = {}): Promise<OtpNode> {
  requireBinary("/usr/bin/oathtool");
  if (!findPamModule()) {
    throw new Error(
      "pam_google_authenticator.so not found (Debian libpam-google-authenticator): run scripts/install-system-deps.sh (as root)",
    );
  }
  const dir = makeTempDir("otp");
  let pam: PamService | undefined;
  let sshd: Sshd | undefined;
  const cleanup = async () => {
    await sshd?.stop();
    pam?.remove();
    removeTempDir(dir);
  };
  // The sshd and the PAM service have stoppers of their own (the sshd, newer, stops first);
  // stopAll removes the temp dir.
  try {
    const secretPath = join(dir, "totp_secret");
    // 160 bits, TOTP, no DISALLOW_REUSE or RATE_LIMIT: tests may log in twice within 30 s.
    writeFileSync(secretPath, `${base32(randomBytes(20))}\n" TOTP_AUTH\n`, { mode: 0o600 });
    const user = userInfo().username;
    pam = installPamService("TOTP login node", [
      // user=: read the secret as that user; noskewadj: the file is not rewritten behind tests.
      `auth required pam_google_authenticator.so secret=${secretPath} user=${user} noskewadj`,
      "account required pam_permit.so",
      "session required pam_permit.so",
      "password required pam_deny.so",
    ]);
    sshd = await startSshd({
      host: opts.host,
      netns: opts.netns,
      programName: pam.name,
      extraConfig: [
        "UsePAM yes",
        "KbdInteractiveAuthentication yes",
        "AuthenticationMethods publickey,keyboard-interactive",
        // Otherwise sshd hands PAM a dummy answer for root, and every code is refused.
        "PermitRootLogin yes",
        ...(opts.extraConfig ?? []),
      ],
    });
    const s = sshd;
    const controlPath = opts.controlPath ? join(dir, "master.sock") : undefined;
    const entry = sshdEntry("otp", s, {
      extra: {
        IdentitiesOnly: "yes",
        StrictHostKeyChecking: "yes",
        ...(controlPath ? { ControlPath: controlPath } : {}),
      },
    });
    const codeCommand = [TOTP_CODE, secretPath];
    const run = (cmd: string[]) =>
      execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", timeout: 10000 }).trim();
    const node: OtpNode = {
      sshd: s,
      dir,
      configPath: writeSshConfig(dir, [entry]),
      alias: "otp",
      secretPath,
      pamService: pam.name,
      controlPath,
      codeCommand,
      wrongCodeCommand: [...codeCommand, "--wrong"],
      askpassPath: TOTP_ASKPASS,
      askpassEnv: (o = {}) => ({
        SSH_ASKPASS: TOTP_ASKPASS,
        SSH_ASKPASS_REQUIRE: "force",
        PSC_TB_TOTP_SECRET_FILE: secretPath,
        ...(o.wrong ? { PSC_TB_TOTP_WRONG: "1" } : {}),
        ...(o.log ? { PSC_TB_ASKPASS_LOG: o.log } : {}),
      }),
      code: () => run(codeCommand),
      wrongCode: () => run(node.wrongCodeCommand),
      stop: cleanup,
    };
    return node;
  } catch (err) {
    await cleanup();
    throw err;
  }
}
