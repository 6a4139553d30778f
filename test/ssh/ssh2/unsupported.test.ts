// What the built-in ssh2 transport cannot do is named, with the way out (the openssh transport),
// instead of a misleading error: a certificate-only login node (CertificateFile), a host behind
// ProxyCommand (its HostName does not resolve here), GSSAPIAuthentication.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isSidecarError, type SidecarError } from "../../../src/errors.js";
import { SshConnections } from "../../../src/ssh/connections.js";
import { startCertNode, type CertNode } from "../../testbed/cert-node.js";
import { stopAllAfterAll, warnSkip } from "../../testbed/hooks.js";
import { canUseNamespaces } from "../../testbed/netns.js";
import { startProxyCommandNode } from "../../testbed/proxycommand-node.js";
import { makeTempDir } from "../../testbed/registry.js";
import { sshdEntry, writeSshConfig } from "../../testbed/ssh-config.js";

stopAllAfterAll();

const ns = await canUseNamespaces();
if (!ns.ok) warnSkip("the ProxyCommand node over ssh2", ns.reason);

async function failure(p: Promise<unknown>): Promise<SidecarError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isSidecarError(err)) throw new Error(`expected an error, got ${String(err)}`);
  return err;
}

const OPENSSH = /use the openssh transport.*PARSL_SIDECAR_SSH_TRANSPORT=openssh/;

describe("a certificate-only login node over ssh2", () => {
  let n: CertNode;
  beforeAll(async () => {
    n = await startCertNode();
  }, 20000);
  afterAll(async () => await n?.stop(), 20000);

  it("names CertificateFile and the openssh transport, not authorized_keys", async () => {
    const pool = new SshConnections({ configPath: n.configPath });
    const err = await failure(pool.acquire(n.alias, "test"));
    await pool.close();
    expect(err.code).toBe("SSH_AUTH");
    expect(err.message).toContain(`CertificateFile ${n.key.certPath} (certificates)`);
    expect(err.message).toMatch(
      /needs what the built-in ssh2 transport cannot do: CertificateFile/,
    );
    expect(err.message).toMatch(OPENSSH);
    expect(err.message).not.toMatch(/authorized_keys/);
    expect(err.data).toMatchObject({ unsupported: ["CertificateFile"], suggest: "openssh" });
  });

  it("names a KEY-cert.pub that OpenSSH would load next to the key, too", async () => {
    const dir = makeTempDir("cert-implicit");
    const configPath = writeSshConfig(dir, [
      sshdEntry("implicit", n.sshd, {
        identityFile: n.key.keyPath,
        extra: { IdentitiesOnly: "yes", IdentityAgent: "none", BatchMode: "yes" },
      }),
    ]);
    const pool = new SshConnections({ configPath });
    const err = await failure(pool.acquire("implicit", "test"));
    await pool.close();
    expect(err.message).toContain(`${n.key.keyPath}-cert.pub next to IdentityFile`);
    expect(err.message).toMatch(OPENSSH);
  });
});

describe("ProxyCommand over ssh2", () => {
  it("is named before anything is tried (the HostName would be the wrong place)", async () => {
    const dir = makeTempDir("proxycommand-cfg");
    const configPath = writeSshConfig(dir, [
      {
        host: "bastioned",
        hostName: "node-7.cluster.psc-testbed.invalid",
        proxyCommand: "ssh -W %h:%p jump",
      },
    ]);
    const pool = new SshConnections({ configPath });
    const err = await failure(pool.acquire("bastioned", "test"));
    await pool.close();
    expect(err.code).toBe("SSH_CONFIG");
    expect(err.message).toContain("ProxyCommand `ssh -W %h:%p jump`");
    expect(err.message).toMatch(OPENSSH);
    expect(err.message).not.toMatch(/does not resolve/);
    expect(err.data).toMatchObject({ unsupported: ["ProxyCommand"], transport: "ssh2" });
  });

  it.skipIf(!ns.ok)(
    `the test bed's ProxyCommand node${ns.ok ? "" : ` (SKIPPED: ${ns.reason})`}`,
    { timeout: 60000 },
    async () => {
      const n = await startProxyCommandNode();
      try {
        const pool = new SshConnections({ configPath: n.configPath });
        const err = await failure(pool.acquire(n.alias, "test"));
        await pool.close();
        expect(err.code).toBe("SSH_CONFIG");
        expect(err.message).toMatch(/through ProxyCommand `ssh -F .* -W %h:%p jump`/);
        expect(err.message).toMatch(OPENSSH);
      } finally {
        await n.stop();
      }
    },
  );
});

describe("GSSAPIAuthentication over ssh2", () => {
  it("is named when the server refuses what ssh2 offered", async () => {
    const n = await startCertNode();
    const dir = makeTempDir("gssapi");
    const configPath = writeSshConfig(dir, [
      sshdEntry("kerberos", n.sshd, {
        identityFile: n.sshd.unauthorizedKeyPath ?? n.caKeyPath,
        extra: {
          IdentitiesOnly: "yes",
          IdentityAgent: "none",
          BatchMode: "yes",
          GSSAPIAuthentication: "yes",
        },
      }),
    ]);
    const pool = new SshConnections({ configPath });
    const err = await failure(pool.acquire("kerberos", "test"));
    await pool.close();
    await n.stop();
    expect(err.message).toContain("GSSAPIAuthentication yes (Kerberos)");
    expect(err.message).toMatch(OPENSSH);
  });
});
