// What `cli.ts up KIND` starts, and the JSON it prints for each kind.
import { startSshd, type Sshd } from "./sshd.js";

export interface KindOptions {
  netns?: string;
  host?: string;
  extraConfig?: string[];
  encryptedKey?: boolean;
  unauthorizedKey?: boolean;
  backend?: string;
  slurm?: boolean;
  computeSshd?: boolean;
  topology?: boolean;
}

type Starter = (o: KindOptions) => Promise<Record<string, unknown>>;

/** The JSON fields of an sshd (methods dropped). */
export function sshdInfo(s: Sshd): Record<string, unknown> {
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    keyPath: s.keyPath,
    knownHostsPath: s.knownHostsPath,
    hostKeyPublic: s.hostKeyPublic,
    netns: s.netns ?? null,
    pid: s.pid,
    dir: s.dir,
    logPath: s.logPath,
    configPath: s.configPath,
    encryptedKeyPath: s.encryptedKeyPath ?? null,
    encryptedKeyPassphrase: s.encryptedKeyPassphrase ?? null,
    unauthorizedKeyPath: s.unauthorizedKeyPath ?? null,
    sshArgs: s.sshArgs(),
  };
}

export const KINDS: Record<string, Starter> = {
  sshd: async (o) =>
    sshdInfo(
      await startSshd({
        netns: o.netns,
        host: o.host,
        extraConfig: o.extraConfig,
        encryptedKey: o.encryptedKey,
        unauthorizedKey: o.unauthorizedKey,
      }),
    ),
};
