// Set-up for the openssh transport's tests: a private sshd, an ssh config naming it (given to
// ssh with -F and absolute paths: OpenSSH takes ~ from the passwd entry, not $HOME), a private
// runtime directory, links that are closed after the block, and remoteExec/remoteSpawn over a
// link as the services use them.
import { join } from "node:path";
import type { ClientChannel } from "ssh2";
import { afterAll, beforeAll } from "vitest";
import type { ExecOptions, ExecResult, HostProcess, SpawnOptions } from "../../../src/ssh/host.js";
import { OpenSshLink, type OpenSshLinkOptions } from "../../../src/ssh/openssh/openssh-link.js";
import { killGroupCommand } from "../../../src/ssh/remote-command.js";
import { remoteExec, remoteSpawn, type RemoteExecDeps } from "../../../src/ssh/ssh-exec.js";
import { ensurePrivateDir } from "../../../src/util/private-dir.js";
import { makeTempDir, registerStopper } from "../../testbed/registry.js";
import { writeSshConfig, type SshConfigEntry } from "../../testbed/ssh-config.js";
import { startSshd, type Sshd, type SshdOptions } from "../../testbed/sshd.js";
import { entryFor } from "../helpers.js";

export interface OpenSshBed {
  sshd: Sshd;
  configPath: string;
  runtimeDir: string;
  /** a link to `target` (default `pool`), closed when the bed stops */
  link(opts?: Partial<OpenSshLinkOptions>, target?: string): OpenSshLink;
  /** an opened link */
  open(opts?: Partial<OpenSshLinkOptions>, target?: string): Promise<OpenSshLink>;
  stop(): Promise<void>;
}

export interface BedOptions {
  sshd?: SshdOptions;
  /** more options for the `pool` entry */
  extra?: Record<string, string | number>;
  /** more entries for the config */
  entries?: (s: Sshd) => SshConfigEntry[];
}

export async function opensshBed(opts: BedOptions = {}): Promise<OpenSshBed> {
  const sshd = await startSshd(opts.sshd ?? {});
  const configPath = writeSshConfig(
    sshd.dir,
    [entryFor("pool", sshd, opts.extra), ...(opts.entries?.(sshd) ?? [])],
    "client_config",
  );
  const runtimeDir = ensurePrivateDir(join(makeTempDir("openssh"), "run"));
  const links: OpenSshLink[] = [];
  const stop = async (): Promise<void> => {
    unregister();
    for (const l of links.splice(0)) l.close();
    await sshd.stop();
  };
  const unregister = registerStopper(stop);
  const link = (o: Partial<OpenSshLinkOptions> = {}, target = "pool"): OpenSshLink => {
    const l = new OpenSshLink(target, {
      runtimeDir,
      configPath,
      reconnect: { initialMs: 50, maxMs: 1000 },
      ...o,
    });
    l.on("error", () => undefined);
    links.push(l);
    return l;
  };
  return {
    sshd,
    configPath,
    runtimeDir,
    link,
    open: async (o, target) => {
      const l = link(o, target);
      await l.open();
      return l;
    },
    stop,
  };
}

/** A bed for the tests of one describe block (set in beforeAll, stopped in afterAll). */
export function bedPerBlock(opts: BedOptions = {}): { bed: OpenSshBed; link: OpenSshLink } {
  const held = {} as { bed: OpenSshBed; link: OpenSshLink };
  beforeAll(async () => {
    held.bed = await opensshBed(opts);
    held.link = await held.bed.open();
  }, 30000);
  afterAll(async () => {
    await held.bed?.stop();
  }, 30000);
  return held;
}

/** remoteExec/remoteSpawn's dependencies over a link, as SshConnections builds them. */
export function execDeps(link: OpenSshLink, waitMs = 30000): RemoteExecDeps {
  return {
    target: link.target,
    open: async (command) => {
      const { channel, release, generation } = await link.exec(command, waitMs);
      return {
        channel: channel as unknown as ClientChannel,
        done: release,
        onGone: (cb) => link.onEnded(generation, cb),
      };
    },
    killGroup: async (pgid, signal) => {
      const { channel, release } = await link.exec(killGroupCommand(pgid, signal), waitMs);
      try {
        await new Promise<void>((r) => {
          channel.on("close", () => r());
          channel.resume();
          channel.stderr.resume();
          channel.end();
        });
      } finally {
        release();
      }
    },
  };
}

export function exec(link: OpenSshLink, command: string, opts?: ExecOptions): Promise<ExecResult> {
  return remoteExec(execDeps(link), command, opts);
}

export function spawnOn(
  link: OpenSshLink,
  command: string,
  opts?: SpawnOptions,
): Promise<HostProcess> {
  return remoteSpawn(execDeps(link), command, opts);
}
