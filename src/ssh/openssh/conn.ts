/**
 * One connection of a link: the master it goes through (the user's, or one started here), the
 * connection held to its socket (MuxWatch), and how it ends (ours stopped, the user's let go).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SidecarError } from "../../errors.js";
import { ensurePrivateDir } from "../../util/private-dir.js";
import { StaleForwards } from "./forwards.js";
import { clientOptions, masterRunning, startMaster } from "./master.js";
import type { MasterLog } from "./master-log.js";
import { MuxWatch } from "./mux-watch.js";
import { masterSettings, type OpenSshLinkOptions } from "./options.js";
import {
  builtinCiphers,
  type OpenSshTarget,
  preferredCiphers,
  type Resolved,
  resolveOpenSsh,
} from "./resolve.js";
import { runSsh } from "./run.js";
import { atLeast, MIN_OPENSSH_ASKPASS, sshVersion } from "./version.js";

export interface Conn {
  /** what `ssh -G` said for the target at this connect */
  resolved: Resolved;
  controlPath: string;
  /** false: the user's master, never stopped here */
  owned: boolean;
  watch: MuxWatch;
  stale: StaleForwards;
  /** our master's log (none for the user's) */
  log?: MasterLog;
  /** resolves when our master's stderr closed */
  ended?: Promise<void>;
  connectedAt: number;
}

/** a Unix socket path holds 107 bytes; ssh adds 17 for its temporary name */
const SOCKET_PATH_MAX = 90;

/** Socket paths of one link, in the runtime directory's `ssh` (0700), short enough for a socket. */
export class SocketPaths {
  private dir: string | undefined;
  private next = 0;
  private readonly id = randomBytes(3).toString("hex");

  constructor(private readonly runtimeDir: string) {}

  /** what every master socket of this link starts with; undefined before the first */
  masterPrefix(): string | undefined {
    return this.dir ? join(this.dir, `m-${this.id}-`) : undefined;
  }

  /** `m-ID-N` for a master, `f-ID-N` for a forward */
  socket(kind: "m" | "f"): string {
    if (!this.dir) {
      const dir = ensurePrivateDir(join(this.runtimeDir, "ssh"));
      // a long runtime directory: a private one under the temporary directory instead
      this.dir = dir.length + 16 <= SOCKET_PATH_MAX ? dir : mkdtempSync(join(tmpdir(), "psc-ssh-"));
    }
    return join(this.dir, `${kind}-${this.id}-${this.next++}`);
  }
}

/** One connect: the user's master when one runs at their ControlPath, else a new one. */
export async function openConn(
  target: string,
  t: OpenSshTarget,
  sshPath: string,
  o: OpenSshLinkOptions,
  paths: SocketPaths,
  onResolved?: (r: Resolved) => void,
): Promise<Conn> {
  const version = await sshVersion(sshPath);
  // before 8.4 ssh cannot be made to ask through a program without a display: it runs in
  // BatchMode, so keys, certificates, ProxyCommand and the user's master still work
  const oldAskpass = o.askpass !== undefined && !atLeast(version, MIN_OPENSSH_ASKPASS);
  if (oldAskpass) o = { ...o, askpass: undefined };
  const r = await resolveOpenSsh(sshPath, t);
  onResolved?.(r);
  if (o.reuseUserMaster !== false && r.controlPath) {
    if (await masterRunning(sshPath, t, r.controlPath)) {
      const watch = await MuxWatch.open(r.controlPath, 10_000);
      o.log?.(`using your ControlMaster at ${r.controlPath} (pid ${watch.pid})`, {
        target,
      });
      return {
        controlPath: r.controlPath,
        owned: false,
        resolved: r,
        watch,
        stale: new StaleForwards(),
        connectedAt: Date.now(),
      };
    }
  }
  const path = paths.socket("m");
  const ciphers = preferredCiphers(r.ciphers, await builtinCiphers(sshPath));
  const ctx = {
    target,
    alias: t.host,
    resolved: r,
    batch: !o.askpass || r.batchMode,
    ...(oldAskpass
      ? {
          batchWhy: `\`${sshPath}\` is OpenSSH ${version.major}.${version.minor}, which cannot hand a server's questions to the sidecar (SSH_ASKPASS_REQUIRE came in OpenSSH ${MIN_OPENSSH_ASKPASS.major}.${MIN_OPENSSH_ASKPASS.minor}); update OpenSSH, or use the ssh2 transport, which asks`,
        }
      : r.batchMode
        ? { batchWhy: "your ssh config sets BatchMode yes for this host; without it you are asked" }
        : {}),
    ...(t.configPath ? { configPath: t.configPath } : {}),
  };
  let m: Awaited<ReturnType<typeof startMaster>>;
  try {
    m = await startMaster(t, r, path, masterSettings(o, sshPath), ctx, ciphers);
  } catch (err) {
    // ssh says only "Permission denied" when no one answered its question; the broker knows why
    const unanswered = o.askpass?.unanswered?.();
    if (unanswered && err instanceof SidecarError && err.code === "SSH_AUTH") throw unanswered;
    throw err;
  }
  let watch: MuxWatch;
  try {
    watch = await MuxWatch.open(path, 10_000);
  } catch (err) {
    void runSsh(sshPath, ["-O", "exit", ...clientOptions(path, t), "--", t.host], {
      timeoutMs: 5_000,
    }).catch(() => undefined);
    throw err;
  }
  for (const note of m.log.notes) o.log?.(note, { target });
  return {
    controlPath: path,
    owned: true,
    resolved: r,
    watch,
    stale: new StaleForwards(),
    log: m.log,
    ended: m.ended,
    connectedAt: Date.now(),
  };
}

/** End a connection: ours is stopped, the user's only let go. */
export function releaseConn(c: Conn, sshPath: string, t: OpenSshTarget): void {
  const alive = c.watch.isOpen;
  c.watch.close();
  if (!c.owned) return;
  if (!alive) {
    // a master killed hard leaves its socket behind
    rmSync(c.controlPath, { force: true });
    return;
  }
  if (ownsPid(c.watch.pid, c.controlPath)) {
    try {
      process.kill(c.watch.pid, "SIGTERM");
      return;
    } catch {
      /* gone */
    }
  }
  // no /proc to check the pid against: ask the master itself
  void runSsh(sshPath, ["-O", "exit", ...clientOptions(c.controlPath, t), "--", t.host], {
    timeoutMs: 5_000,
  }).catch(() => undefined);
}

/**
 * SIGTERM every ssh master of ours still running whose `-S` starts with `prefix` (a link's
 * sockets; the socket file itself may be gone): one a connect left behind because its start was
 * cut short just as ssh went to the background (seen once in CI, the first master of a login
 * needing a code, alive after `run` ended). Needs /proc; elsewhere a no-op.
 */
export function stopStrayMasters(prefix: string | undefined): number {
  let n = 0;
  for (const pid of mastersUnder(prefix)) {
    try {
      process.kill(pid, "SIGTERM");
      n++;
    } catch {
      /* gone, or not ours */
    }
  }
  return n;
}

/** Pids of the ssh masters running whose `-S` starts with `prefix` ([] without /proc). */
export function mastersUnder(prefix: string | undefined): number[] {
  if (!prefix) return [];
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const s = argv.indexOf("-S");
    if (argv.includes("-M") && s >= 0 && argv[s + 1]?.startsWith(prefix)) out.push(Number(name));
  }
  return out;
}

/** True when `pid` is the ssh master listening at `controlPath` (checked in /proc). */
function ownsPid(pid: number, controlPath: string): boolean {
  try {
    // the whole command line: some systems rewrite it to `ssh: PATH [mux]`
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(controlPath);
  } catch {
    return false;
  }
}
