/**
 * ssh2's authentication methods for one hop: the ssh-agent ($SSH_AUTH_SOCK or IdentityAgent),
 * then each identity file parsed by ssh2 (an encrypted key's passphrase comes from an environment
 * variable). Never a password.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { SidecarError } from "../../errors.js";
import { type AuthOptions, PASSPHRASE_ENV } from "../auth.js";
import type { ResolvedHost } from "../config.js";
import { ssh2 } from "./lazy.js";

type ParsedKey = Exclude<ReturnType<typeof import("ssh2").utils.parseKey>, Error | unknown[]>;

export type AuthMethod =
  | { type: "agent"; username: string; agent: string }
  | { type: "publickey"; username: string; key: ParsedKey };

/** Parsed keys by file content and passphrase: decrypting a key (bcrypt) costs ~1 s, once is enough. */
const parsedKeys = new Map<string, ParsedKey | Error>();

function parseCached(data: Buffer, passphrase: string | undefined): ParsedKey | Error {
  const id = createHash("sha256")
    .update(data)
    .update("\0")
    .update(passphrase ?? "")
    .digest("hex");
  let parsed = parsedKeys.get(id);
  if (parsed === undefined) {
    const r = ssh2().utils.parseKey(data, passphrase);
    parsed =
      r instanceof Error
        ? r
        : (((Array.isArray(r) ? r[0] : r) as ParsedKey | undefined) ??
          new Error("no key in the file"));
    if (parsedKeys.size > 64) parsedKeys.clear();
    parsedKeys.set(id, parsed);
  }
  return parsed;
}

export interface AuthPlan {
  methods: AuthMethod[];
  /** what was tried or skipped, for error messages (no secrets) */
  described: string[];
  /** problems with configured keys (missing, unreadable, wrong passphrase) */
  problems: string[];
  /** encrypted keys without a passphrase in the environment: asked for when someone can answer */
  deferred: Array<{ file: string; data: Buffer }>;
}

/** Build the authentication methods for one hop, or throw SSH_AUTH when there is none. */
export function planAuth(host: ResolvedHost, opts: AuthOptions = {}): AuthPlan {
  const plan: AuthPlan = { methods: [], described: [], problems: [], deferred: [] };
  const username = host.user;
  const agentPath =
    host.identityAgent === "none" ? undefined : (host.identityAgent ?? process.env.SSH_AUTH_SOCK);
  if (opts.agent !== false && agentPath) {
    if (existsSync(agentPath)) {
      plan.methods.push({ type: "agent", username, agent: agentPath });
      plan.described.push(`ssh-agent at ${agentPath}`);
    } else {
      plan.problems.push(`ssh-agent socket ${agentPath} does not exist`);
    }
  }
  const envName = opts.passphraseEnv ?? PASSPHRASE_ENV;
  const passphrase = process.env[envName];
  for (const file of host.identityFiles) {
    let data: Buffer;
    try {
      if (!existsSync(file)) {
        if (host.identityFilesExplicit) plan.problems.push(`identity file ${file} does not exist`);
        continue;
      }
      if (!statSync(file).isFile()) {
        plan.problems.push(`identity file ${file} is not a regular file`);
        continue;
      }
      data = readFileSync(file);
    } catch (err) {
      plan.problems.push(
        `identity file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
      continue;
    }
    const key = parseCached(data, passphrase);
    if (key instanceof Error) {
      const encrypted = /encrypted|passphrase|decrypt/i.test(key.message);
      if (encrypted && passphrase === undefined) {
        plan.problems.push(`identity file ${file} is encrypted and $${envName} is not set`);
        plan.deferred.push({ file, data });
      } else if (encrypted)
        plan.problems.push(
          `identity file ${file} could not be decrypted with the passphrase in $${envName}`,
        );
      else
        plan.problems.push(
          `identity file ${file} is not a private key ssh2 can read (${key.message})`,
        );
      continue;
    }
    if (!key.isPrivateKey()) {
      plan.problems.push(`identity file ${file} holds no private key`);
      continue;
    }
    plan.methods.push({ type: "publickey", username, key });
    plan.described.push(`key ${file} (${key.type})`);
  }
  if (plan.methods.length === 0 && !opts.allowEmpty) throw noWayToAuthenticate(host, plan);
  return plan;
}

/** SSH_AUTH before any key is offered: nothing configured can be used. */
export function noWayToAuthenticate(host: ResolvedHost, plan: AuthPlan): SidecarError {
  return new SidecarError(
    "SSH_AUTH",
    `No way to authenticate to ${host.user}@${host.hostName}:${host.port} (target \`${host.target}\`): ${plan.problems.length > 0 ? plan.problems.join("; ") : "no ssh-agent ($SSH_AUTH_SOCK unset) and no identity file (~/.ssh/id_ed25519, id_ecdsa, id_rsa)"}. ` +
      `Start an ssh-agent with your key, or set IdentityFile for this host in your ssh config.`,
    { data: { target: host.target, problems: plan.problems } },
  );
}

/** The SSH_AUTH error after the server refused every method. */
export function authFailed(host: ResolvedHost, plan: AuthPlan, cause?: unknown): SidecarError {
  const extra = plan.problems.length > 0 ? ` (also: ${plan.problems.join("; ")})` : "";
  return new SidecarError(
    "SSH_AUTH",
    `Authentication to ${host.user}@${host.hostName}:${host.port} (target \`${host.target}\`) failed: the server refused ${plan.described.join(", ")}${extra}. ` +
      `Check that the matching public key is in ~${host.user}/.ssh/authorized_keys on that host and that the user name is right.`,
    { cause, data: { target: host.target, user: host.user, tried: plan.described } },
  );
}
