/** The host-key policy (accept-new by default) applied to the key a server presents. */
import { SidecarError } from "../errors.js";
import type { ResolvedHost } from "./config.js";
import {
  fingerprint,
  keyTypeOf,
  lookupHostKey,
  readKnownKeys,
  recordHostKey,
} from "./known-hosts.js";
import { knownHostsName } from "./target.js";

export interface HostKeyDecision {
  ok: boolean;
  /** set when refused */
  error?: SidecarError;
  /** set when the key was new and recorded, or accepted despite a change (policy `no`) */
  note?: string;
  fingerprint: string;
}

/** Names a host is looked up under in known_hosts. */
export function knownNames(host: ResolvedHost): string[] {
  if (host.hostKeyAlias) return [host.hostKeyAlias];
  return [knownHostsName(host.hostName, host.port)];
}

export function knownTypes(host: ResolvedHost): string[] {
  return [
    ...new Set(
      readKnownKeys([...host.userKnownHostsFiles, ...host.globalKnownHostsFiles], knownNames(host))
        .filter((k) => !k.marker)
        .map((k) => k.keyType),
    ),
  ];
}

function describe(host: ResolvedHost): string {
  const name = knownNames(host)[0]!;
  return host.target === name || host.target === host.hostName
    ? `\`${name}\``
    : `\`${name}\` (target \`${host.target}\`)`;
}

/** Check a presented key against known_hosts and apply StrictHostKeyChecking. */
export function checkHostKey(host: ResolvedHost, blob: Buffer): HostKeyDecision {
  const files = [...host.userKnownHostsFiles, ...host.globalKnownHostsFiles];
  const names = knownNames(host);
  const fp = fingerprint(blob);
  const type = keyTypeOf(blob);
  const res = lookupHostKey(files, names, blob);
  if (res.status === "match") return { ok: true, fingerprint: fp };
  if (res.status === "revoked") {
    return {
      ok: false,
      fingerprint: fp,
      error: new SidecarError(
        "SSH_HOST_KEY",
        `The host key of ${describe(host)} (${type} ${fp}) is marked @revoked in ${res.entry.file}:${res.entry.line}; refusing to connect.`,
        {
          data: { host: names[0], presented: fp },
        },
      ),
    };
  }
  if (res.status === "mismatch") {
    const known = res.entries.map(
      (e) => `${fingerprint(Buffer.from(e.key, "base64"))} (${e.keyType}, ${e.file}:${e.line})`,
    );
    if (host.strictHostKeyChecking === "no") {
      return {
        ok: true,
        fingerprint: fp,
        note: `host key of ${names[0]} changed (known ${known.join(", ")}, presented ${fp}); accepted because StrictHostKeyChecking is no`,
      };
    }
    const first = res.entries[0]!;
    return {
      ok: false,
      fingerprint: fp,
      error: new SidecarError(
        "SSH_HOST_KEY",
        `The host key of ${describe(host)} has changed: known_hosts has ${known.join(", ")}, the server presented ${type} ${fp}. ` +
          `This can mean someone is intercepting the connection, or the host was reinstalled. If the change is expected, remove the old key with ` +
          `\`ssh-keygen -R '${names[0]}' -f ${first.file}\` and connect again.`,
        {
          data: {
            host: names[0],
            known: res.entries.map((e) => fingerprint(Buffer.from(e.key, "base64"))),
            presented: fp,
            file: first.file,
            line: first.line,
          },
        },
      ),
    };
  }
  if (host.strictHostKeyChecking === "yes") {
    return {
      ok: false,
      fingerprint: fp,
      error: new SidecarError(
        "SSH_HOST_KEY",
        `The host ${describe(host)} is not in known_hosts (${host.userKnownHostsFiles.join(", ")}) and StrictHostKeyChecking is yes; it presented ${type} ${fp}. ` +
          `Verify the fingerprint, then add it (e.g. \`ssh-keyscan -p ${host.port} ${host.hostName} >> ${host.userKnownHostsFiles[0]}\`) or set StrictHostKeyChecking accept-new.`,
        { data: { host: names[0], presented: fp } },
      ),
    };
  }
  const file = host.userKnownHostsFiles[0]!;
  try {
    recordHostKey(file, names[0]!, blob, host.hashKnownHosts);
  } catch (err) {
    return {
      ok: true,
      fingerprint: fp,
      note: `new host ${names[0]} (${type} ${fp}) accepted but could not be recorded in ${file}: ${(err as Error).message}`,
    };
  }
  return {
    ok: true,
    fingerprint: fp,
    note: `new host ${names[0]} (${type} ${fp}) recorded in ${file}`,
  };
}
