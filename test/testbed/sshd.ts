// A private OpenSSH sshd per test: own temp dir, host key, authorized key, free port; on loopback
// or on an address inside a network namespace. Stopped by PID.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import getPort from "get-port";
import {
  descendants,
  killAll,
  requireBinary,
  spawnDaemon,
  waitForPort,
  type Daemon,
} from "./procs.js";
import { makeTempDir, registerStopper, removeTempDir } from "./registry.js";
import { freePortInNetns } from "./netns-port.js";
import { clearStalePyenvLock, clearStalePyenvLockSoon } from "./pyenv-lock.js";

export interface SshdOptions {
  /** Listen address. @default "127.0.0.1" */
  host?: string;
  /** Run inside this network namespace (the host address must exist there). */
  netns?: string;
  /** Fixed port; by default a free one. */
  port?: number;
  /** Extra sshd_config lines; they win over the defaults (sshd takes the first value seen). */
  extraConfig?: string[];
  /** Also make a passphrase-protected key (authorized). `true` uses "testbed-passphrase". */
  encryptedKey?: boolean | string;
  /** Also make a key that is NOT authorized, for negative tests. */
  unauthorizedKey?: boolean;
  /**
   * Run sshd under this program name (a symlink in its temp dir). OpenSSH uses its program name
   * as its PAM service (`/etc/pam.d/<name>`), so a test can have a PAM stack of its own without
   * touching the machine's /etc/pam.d/sshd (see pam-service.ts).
   */
  programName?: string;
}

export interface Sshd {
  host: string;
  port: number;
  user: string;
  netns: string | undefined;
  dir: string;
  configPath: string;
  logPath: string;
  pid: number;
  /** Private key (ed25519, no passphrase), authorized for `user`. */
  keyPath: string;
  /** `[host]:port ssh-ed25519 AAAA...` for the current host key. */
  hostKeyPublic: string;
  /** known_hosts file holding hostKeyPublic as it was at start (not updated by rotateHostKey). */
  knownHostsPath: string;
  encryptedKeyPath?: string;
  encryptedKeyPassphrase?: string;
  unauthorizedKeyPath?: string;
  /** Arguments for the system `ssh` client: `ssh ...sshArgs() command` (ends with user@host). */
  sshArgs(o?: { identity?: string; knownHosts?: string }): string[];
  stop(): Promise<void>;
  /** Stops and starts again: same port, same host key. */
  restart(): Promise<void>;
  /**
   * Stops the listener and its per-connection sshd processes, not what their sessions started
   * (as `systemctl restart ssh` with the connections lost), and starts it again: same port,
   * same host key.
   */
  restartListener(): Promise<void>;
  /** Kills the per-connection sshd processes (and their sessions); the listener stays. */
  killConnections(): Promise<number>;
  /**
   * Kills the per-connection sshd processes only, as a failed network ends a connection: what
   * the sessions started lives on. Returns how many were killed.
   */
  dropConnections(): Promise<number>;
  /** Stops the listener (and its connections): the pool refuses connections until resume(). */
  pause(): Promise<void>;
  /** Starts the listener again after pause(): same port, same host key. */
  resume(): Promise<void>;
  /** New host key, then restart. Returns the new known_hosts line. */
  rotateHostKey(): Promise<string>;
}

const SSHD = "/usr/sbin/sshd";

/** A per-connection sshd process (not what its session started). */
function isSshd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("sshd");
  } catch {
    return false;
  }
}
const KEYGEN = "/usr/bin/ssh-keygen";

function keygen(path: string, passphrase = "", comment = "parsl-sidecar-testbed"): string {
  execFileSync(
    requireBinary(KEYGEN),
    ["-q", "-t", "ed25519", "-N", passphrase, "-C", comment, "-f", path],
    {
      stdio: "ignore",
    },
  );
  return readFileSync(`${path}.pub`, "utf8").trim();
}

/** `host` for port 22, `[host]:port` otherwise, as ssh writes it in known_hosts. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function renderConfig(dir: string, host: string, port: number, extra: string[]): string {
  // Lines before a Match block go first (first value wins); a Match block must come last.
  const m = extra.findIndex((l) => /^\s*match\s/i.test(l));
  const [given, matchBlock] = m < 0 ? [extra, []] : [extra.slice(0, m), extra.slice(m)];
  // sshd takes only the first SetEnv line: the defaults join the caller's in one. A stale pyenv
  // lock (pyenv-lock.ts) then costs a login one failed try, not 60 s of waiting.
  const isSetEnv = (l: string) => /^\s*setenv\s/i.test(l);
  const env = given.filter(isSetEnv).flatMap((l) => l.trim().split(/\s+/).slice(1));
  if (!env.some((e) => e.startsWith("PYENV_REHASH_TIMEOUT="))) env.push("PYENV_REHASH_TIMEOUT=0");
  const front = [...given.filter((l) => !isSetEnv(l)), `SetEnv ${env.join(" ")}`];
  return [
    ...front,
    `ListenAddress ${host}`,
    `Port ${port}`,
    `HostKey ${join(dir, "host_ed25519")}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
    "PermitRootLogin prohibit-password",
    "UsePAM no",
    "StrictModes no",
    "UseDNS no",
    "PrintMotd no",
    "LogLevel VERBOSE",
    "Subsystem sftp internal-sftp",
    ...matchBlock,
    "",
  ].join("\n");
}

/** Starts a private sshd and waits until its port accepts connections. */
export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  requireBinary(SSHD);
  mkdirSync("/run/sshd", { recursive: true });
  const host = opts.host ?? "127.0.0.1";
  const port =
    opts.port ?? (opts.netns ? await freePortInNetns(opts.netns, host) : await getPort({ host }));
  const dir = makeTempDir("sshd");
  let program = SSHD;
  if (opts.programName) {
    if (!/^[A-Za-z0-9._-]+$/.test(opts.programName)) {
      removeTempDir(dir);
      throw new Error(`Expected \`programName\` to be a file name, got \`${opts.programName}\``);
    }
    // Absolute: sshd re-executes itself by argv[0] and refuses a relative one.
    program = join(dir, opts.programName);
    symlinkSync(SSHD, program);
  }
  const user = userInfo().username;
  const keyPath = join(dir, "id_ed25519");
  const authorized = [keygen(keyPath)];
  let hostPub = keygen(join(dir, "host_ed25519"), "", "testbed-host");
  const sshd: Sshd = {
    host,
    port,
    user,
    netns: opts.netns,
    dir,
    keyPath,
    configPath: join(dir, "sshd_config"),
    logPath: join(dir, "sshd.log"),
    knownHostsPath: join(dir, "known_hosts"),
    pid: 0,
    hostKeyPublic: "",
    sshArgs: (o = {}) => [
      "-F",
      "none",
      "-i",
      o.identity ?? keyPath,
      "-p",
      String(port),
      "-o",
      `UserKnownHostsFile=${o.knownHosts ?? sshd.knownHostsPath}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "ConnectTimeout=10",
      `${user}@${host}`,
    ],
    stop: async () => {
      unregister();
      await stopDaemon();
      removeTempDir(dir);
    },
    restart: async () => {
      await stopDaemon();
      await launch();
    },
    restartListener: async () => {
      await stopDaemon({ keepSessions: true });
      await launch();
    },
    killConnections: async () => {
      // Per-connection sshd processes call setsid(), so they are not in the listener's group.
      const kids = daemon ? descendants(daemon.pid) : [];
      killSessions(kids);
      return kids.length;
    },
    pause: async () => {
      await stopDaemon();
    },
    resume: async () => {
      await launch();
    },
    dropConnections: async () => {
      const sshds = (daemon ? descendants(daemon.pid) : []).filter(isSshd);
      killSessions(sshds);
      return sshds.length;
    },
    rotateHostKey: async () => {
      rmSync(join(dir, "host_ed25519"), { force: true });
      rmSync(join(dir, "host_ed25519.pub"), { force: true });
      hostPub = keygen(join(dir, "host_ed25519"), "", "testbed-host");
      sshd.hostKeyPublic = `${knownHostsName(host, port)} ${hostPub.split(" ").slice(0, 2).join(" ")}`;
      await sshd.restart();
      return sshd.hostKeyPublic;
    },
  };
  if (opts.encryptedKey) {
    sshd.encryptedKeyPassphrase =
      typeof opts.encryptedKey === "string" ? opts.encryptedKey : "testbed-passphrase";
    sshd.encryptedKeyPath = join(dir, "id_ed25519_encrypted");
    authorized.push(keygen(sshd.encryptedKeyPath, sshd.encryptedKeyPassphrase));
  }
  if (opts.unauthorizedKey) {
    sshd.unauthorizedKeyPath = join(dir, "id_ed25519_unauthorized");
    keygen(sshd.unauthorizedKeyPath);
  }
  writeFileSync(join(dir, "authorized_keys"), `${authorized.join("\n")}\n`, { mode: 0o600 });
  sshd.hostKeyPublic = `${knownHostsName(host, port)} ${hostPub.split(" ").slice(0, 2).join(" ")}`;
  writeFileSync(sshd.knownHostsPath, `${sshd.hostKeyPublic}\n`);
  writeFileSync(sshd.configPath, renderConfig(dir, host, port, opts.extraConfig ?? []));

  let daemon: Daemon | undefined;
  // a session killed mid-way through its login shell's `pyenv init` leaves a lock (pyenv-lock.ts)
  function killSessions(pids: number[]): void {
    killAll(pids);
    clearStalePyenvLockSoon();
  }
  async function launch(): Promise<void> {
    clearStalePyenvLock();
    daemon = spawnDaemon(program, ["-D", "-e", "-f", sshd.configPath], {
      name: `sshd ${host}:${port}`,
      logPath: sshd.logPath,
      netns: opts.netns,
      marker: dir,
    });
    sshd.pid = daemon.pid;
    await waitForPort(host, port, { daemon, netns: opts.netns, timeoutMs: 15000 });
  }
  async function stopDaemon(o: { keepSessions?: boolean } = {}): Promise<void> {
    if (!daemon) return;
    const d = daemon;
    daemon = undefined;
    // Frozen first: a listener still running while its sessions are killed can accept one
    // more connection (a client's reconnect), whose session then outlives the stop as an
    // orphan and lets the client through a pool that is supposed to be down.
    try {
      process.kill(d.pid, "SIGSTOP");
    } catch {
      /* gone */
    }
    const kids = descendants(d.pid);
    killSessions(o.keepSessions ? kids.filter(isSshd) : kids);
    killAll([d.pid]);
    await d.stop();
  }
  const unregister = registerStopper(() => sshd.stop());
  try {
    await launch();
  } catch (err) {
    await sshd.stop();
    throw err;
  }
  return sshd;
}
