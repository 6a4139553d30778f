/**
 * What the host's ssh config asks that the built-in ssh2 transport cannot do: ProxyCommand,
 * certificates (CertificateFile, or a `KEY-cert.pub` that OpenSSH would load next to a key) and
 * GSSAPI. Named in the error, with the way out (the openssh transport), instead of a misleading
 * "connection refused" or "check authorized_keys".
 */
import { existsSync } from "node:fs";
import { SidecarError } from "../../errors.js";
import type { ResolvedHost } from "../config.js";

/** How to switch to the transport that can (docs/ssh.md, "Transports"). */
export const USE_OPENSSH =
  'use the openssh transport, which runs your own `ssh` and so does what it does from a terminal: set PARSL_SIDECAR_SSH_TRANSPORT=openssh (or SSH_TRANSPORT "openssh" for the pool in executors.json)';

/** ProxyCommand: ssh2 cannot run it, and connecting to the HostName directly would be wrong. */
export function ssh2CannotReach(host: ResolvedHost): SidecarError | undefined {
  if (!host.proxyCommand) return undefined;
  return new SidecarError(
    "SSH_CONFIG",
    `The ssh config${host.configFile ? ` (${host.configFile})` : ""} reaches \`${host.target}\` through ProxyCommand \`${host.proxyCommand}\`, which the built-in ssh2 transport cannot run; ${USE_OPENSSH}.`,
    {
      data: {
        target: host.target,
        unsupported: ["ProxyCommand"],
        transport: "ssh2",
        suggest: "openssh",
      },
    },
  );
}

/** Certificates and GSSAPI the config asks for, by name with where they come from. */
export function ssh2AuthGaps(host: ResolvedHost): { names: string[]; what: string[] } {
  const names: string[] = [];
  const what: string[] = [];
  const certs = [
    ...host.certificateFiles.map((f) => `CertificateFile ${f}`),
    ...host.identityFiles
      .filter(
        (f) => !host.certificateFiles.includes(`${f}-cert.pub`) && existsSync(`${f}-cert.pub`),
      )
      .map((f) => `the certificate ${f}-cert.pub next to IdentityFile ${f}`),
  ];
  if (certs.length > 0) {
    names.push("CertificateFile");
    what.push(`${certs.join(", ")} (certificates)`);
  }
  if (host.gssapiAuthentication) {
    names.push("GSSAPIAuthentication");
    what.push("GSSAPIAuthentication yes (Kerberos)");
  }
  return { names, what };
}
