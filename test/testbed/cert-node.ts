// A login node that trusts only a user CA, as NERSC's sshproxy hands out: `TrustedUserCAKeys`,
// `AuthorizedKeysFile none`, and keys with a `-cert.pub` signed by `ssh-keygen -s` for a window.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { requireBinary } from "./procs.js";
import { makeTempDir, removeTempDir } from "./registry.js";
import { sshdEntry, writeSshConfig } from "./ssh-config.js";
import { startSshd, type Sshd } from "./sshd.js";

const KEYGEN = "/usr/bin/ssh-keygen";

export interface CertNodeOptions {
  /** Listen address. @default "127.0.0.1" */
  host?: string;
  /** Run the sshd inside this network namespace. */
  netns?: string;
  /** More sshd_config lines (see startSshd). */
  extraConfig?: string[];
}

export interface UserCert {
  /** The private key; ssh also loads `<keyPath>-cert.pub` next to it by itself. */
  keyPath: string;
  certPath: string;
}

export interface CertNode {
  sshd: Sshd;
  /** Holds the CA, the user keys, their certificates and ssh_config. */
  dir: string;
  caKeyPath: string;
  caPublicKeyPath: string;
  /** A key whose certificate is valid from 5 minutes ago for a day. */
  key: UserCert;
  /** A key whose certificate expired (valid 2020-01-01 to 2020-01-02). */
  expiredKey: UserCert;
  /** ssh_config with `alias` (the valid certificate) and `expiredAlias`. */
  configPath: string;
  alias: string;
  expiredAlias: string;
  /**
   * A new key and a certificate for the node's user, signed by the CA.
   * @param validity ssh-keygen's `-V` (e.g. `-5m:+1h`, `20200101:20200102`, `+1h:+2h`)
   * @param o.ca another CA's private key (a certificate the node does not trust)
   */
  certify(name: string, validity: string, o?: { ca?: string; principal?: string }): UserCert;
  stop(): Promise<void>;
}

function keygen(args: string[]): void {
  execFileSync(requireBinary(KEYGEN), ["-q", ...args], { stdio: ["ignore", "ignore", "pipe"] });
}

/** Starts an sshd that accepts only user certificates signed by its CA. */
export async function startCertNode(opts: CertNodeOptions = {}): Promise<CertNode> {
  const dir = makeTempDir("cert");
  const caKeyPath = join(dir, "user_ca");
  let sshd: Sshd | undefined;
  try {
    keygen(["-t", "ed25519", "-N", "", "-C", "testbed-user-ca", "-f", caKeyPath]);
    sshd = await startSshd({
      host: opts.host,
      netns: opts.netns,
      // `none` first, so the key startSshd authorizes is ignored: only a certificate logs in.
      extraConfig: [
        `TrustedUserCAKeys ${caKeyPath}.pub`,
        "AuthorizedKeysFile none",
        ...(opts.extraConfig ?? []),
      ],
    });
    const s = sshd;
    const certify: CertNode["certify"] = (name, validity, o = {}) => {
      const keyPath = join(dir, `id_${name}`);
      keygen(["-t", "ed25519", "-N", "", "-C", `testbed-${name}`, "-f", keyPath]);
      keygen([
        "-s",
        o.ca ?? caKeyPath,
        "-I",
        `testbed-${name}`,
        "-n",
        o.principal ?? s.user,
        "-V",
        validity,
        `${keyPath}.pub`,
      ]);
      return { keyPath, certPath: `${keyPath}-cert.pub` };
    };
    const key = certify("valid", "-5m:+1d");
    const expiredKey = certify("expired", "20200101:20200102");
    const entry = (alias: string, c: UserCert) =>
      sshdEntry(alias, s, { identityFile: c.keyPath, certificateFile: c.certPath });
    const node: CertNode = {
      sshd: s,
      dir,
      caKeyPath,
      caPublicKeyPath: `${caKeyPath}.pub`,
      key,
      expiredKey,
      configPath: writeSshConfig(dir, [entry("cert", key), entry("cert-expired", expiredKey)]),
      alias: "cert",
      expiredAlias: "cert-expired",
      certify,
      stop: async () => {
        await s.stop();
        removeTempDir(dir);
      },
    };
    return node;
  } catch (err) {
    await sshd?.stop();
    removeTempDir(dir);
    throw err;
  }
}

/** The validity line of a certificate as `ssh-keygen -L` prints it (for messages and tests). */
export function certValidity(certPath: string): string {
  const out = execFileSync(requireBinary(KEYGEN), ["-L", "-f", certPath], { encoding: "utf8" });
  return /Valid: (.*)/.exec(out)?.[1] ?? "";
}
