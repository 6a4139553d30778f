/**
 * Which transport carries a pool's connection (docs/ssh.md, "Transports"): `SSH_TRANSPORT` in
 * executors.json or a pool option, else PARSL_SIDECAR_SSH_TRANSPORT, else `auto`. `auto` is the
 * user's OpenSSH when `ssh` is OpenSSH 8.4 or newer (SSH_ASKPASS_REQUIRE, so that what a server
 * asks reaches the user), else the built-in ssh2.
 */
import { SidecarError } from "../errors.js";
import { describeValue } from "../util/validation.js";
import type { TransportKind } from "./link.js";
import { runSsh } from "./openssh/run.js";
import {
  atLeast,
  checkSshVersion,
  MIN_OPENSSH,
  MIN_OPENSSH_ASKPASS,
  parseSshVersion,
  type SshVersion,
} from "./openssh/version.js";

export type TransportPreference = "auto" | TransportKind;
export const TRANSPORT_PREFERENCES: readonly TransportPreference[] = ["auto", "openssh", "ssh2"];
export const TRANSPORT_ENV = "PARSL_SIDECAR_SSH_TRANSPORT";

export interface TransportDecision {
  kind: TransportKind;
  preference: TransportPreference;
  /** one line for `ssh check` and the log */
  why: string;
  /** the `ssh` found, when it was looked at */
  ssh?: SshVersion;
}

/** A preference from a file, an option or the environment; `where` names it in the error. */
export function parsePreference(value: unknown, where: string): TransportPreference {
  if (typeof value === "string" && (TRANSPORT_PREFERENCES as readonly string[]).includes(value))
    return value as TransportPreference;
  throw new SidecarError(
    "INVALID_ARGUMENT",
    `Expected \`${where}\` to be one of auto, openssh, ssh2, got ${describeValue(value)}`,
    { data: { field: where, value } },
  );
}

/** The preference in force when none is given for a pool: the environment's, else `auto`. */
export function defaultPreference(env: NodeJS.ProcessEnv = process.env): TransportPreference {
  const v = env[TRANSPORT_ENV];
  return v === undefined || v === "" ? "auto" : parsePreference(v, TRANSPORT_ENV);
}

/** What `ssh -V` prints, or why it could not run. */
async function sshVersionText(sshPath: string): Promise<string | Error> {
  try {
    const r = await runSsh(sshPath, ["-V"], { timeoutMs: 10_000 });
    return `${r.stderr}${r.stdout}`;
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * Decide the transport for `preference` (runs `ssh -V`; SshConnections keeps the answer);
 * `openssh` asked for but unusable is an error.
 */
export async function decideTransport(
  preference: TransportPreference,
  sshPath = "ssh",
): Promise<TransportDecision> {
  if (preference === "ssh2")
    return { kind: "ssh2", preference, why: "ssh2 was asked for (SSH_TRANSPORT)" };
  const printed = await sshVersionText(sshPath);
  if (preference === "openssh") {
    if (printed instanceof Error)
      throw new SidecarError(
        "SSH_CONFIG",
        `The openssh transport was asked for, but \`${sshPath} -V\` could not run: ${printed.message}. Install OpenSSH's client, or use the ssh2 transport.`,
        { cause: printed, data: { ssh: sshPath } },
      );
    const v = checkSshVersion(sshPath, printed, MIN_OPENSSH);
    return { kind: "openssh", preference, why: "openssh was asked for (SSH_TRANSPORT)", ssh: v };
  }
  if (printed instanceof Error)
    return { kind: "ssh2", preference, why: `auto: no usable \`${sshPath}\` (${printed.message})` };
  const v = parseSshVersion(printed);
  const min = `${MIN_OPENSSH_ASKPASS.major}.${MIN_OPENSSH_ASKPASS.minor}`;
  if (!v || /OpenSSH_for_Windows/i.test(printed))
    return {
      kind: "ssh2",
      preference,
      why: `auto: \`${sshPath}\` is not OpenSSH with a ControlMaster`,
    };
  if (!atLeast(v, MIN_OPENSSH_ASKPASS))
    return {
      kind: "ssh2",
      preference,
      why: `auto: OpenSSH ${v.major}.${v.minor} is older than ${min}, which routes servers' questions to you`,
      ssh: v,
    };
  return {
    kind: "openssh",
    preference,
    why: `auto: OpenSSH ${v.major}.${v.minor} found (${min} or newer)`,
    ssh: v,
  };
}
