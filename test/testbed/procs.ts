// Shared process helpers for the test bed: daemons started by PID with a log file, port waits,
// kill by PID (SIGTERM then SIGKILL), and a registry that stops everything at process exit.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, openSync, closeSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { MARKER_ENV, registerPid, unregisterPid } from "./registry.js";

export { MARKER_ENV };
export { childrenTree as descendants, markedPids } from "./registry.js";

export interface Daemon {
  name: string;
  pid: number;
  logPath: string;
  child: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  hasExited(): boolean;
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  name: string;
  logPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run inside this network namespace (`ip netns exec NS ...`). */
  netns?: string;
  /**
   * How to enter `netns`: `ip` (`ip netns exec`, which also remounts /sys for the namespace) or
   * `nsenter` (network namespace only; /sys/fs/cgroup stays visible, which slurmd needs).
   * @default "ip"
   */
  netnsVia?: "ip" | "nsenter";
  /** Value for the marker env variable (usually the owning temp dir). */
  marker?: string;
}

/** Throws a clear error when a system binary is missing. */
export function requireBinary(path: string): string {
  if (!existsSync(path)) {
    throw new Error(`${path} not found: run scripts/install-system-deps.sh (as root)`);
  }
  return path;
}

/** Starts a long-running process with stdout+stderr appended to `logPath`. */
export function spawnDaemon(cmd: string, args: string[], opts: SpawnOptions): Daemon {
  const fd = openSync(opts.logPath, "a");
  const [file, ...argv] = opts.netns
    ? [...netnsCommand(opts.netns, opts.netnsVia ?? "ip"), cmd, ...args]
    : [cmd, ...args];
  const env = {
    ...(opts.env ?? process.env),
    ...(opts.marker ? { [MARKER_ENV]: opts.marker } : {}),
  };
  let child: ChildProcess;
  try {
    // Own process group: a Ctrl-C on the terminal reaches us first, and we stop it in order.
    child = spawn(file!, argv, { stdio: ["ignore", fd, fd], env, cwd: opts.cwd, detached: true });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`failed to start ${opts.name} (${cmd})`);
  const pid = child.pid;
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve(code ?? signal ?? -1);
    });
    child.once("error", () => {
      done = true;
      resolve(-1);
    });
  });
  const daemon: Daemon = {
    name: opts.name,
    pid,
    logPath: opts.logPath,
    child,
    exited,
    hasExited: () => done,
    stop: async (graceMs = 3000) => {
      unregisterPid(pid);
      if (done) return;
      await killPid(pid, { graceMs, exited });
    },
  };
  registerPid(pid);
  return daemon;
}

/** The command prefix that runs a program inside a network namespace. */
export function netnsCommand(netns: string, via: "ip" | "nsenter" = "ip"): string[] {
  return via === "ip"
    ? ["ip", "netns", "exec", netns]
    : ["nsenter", `--net=/run/netns/${netns}`, "--"];
}

/** Alive and not a zombie or dead (PID 1 here may not reap orphans; a zombie is gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X" && state !== "x";
  } catch {
    return !existsSync("/proc/self/stat"); // gone in between, or no /proc (then kill(0) decides)
  }
}

/** SIGTERM, wait up to graceMs, then SIGKILL. Resolves once the process is gone. */
export async function killPid(
  pid: number,
  opts: { graceMs?: number; exited?: Promise<unknown> } = {},
): Promise<void> {
  const graceMs = opts.graceMs ?? 3000;
  const gone =
    opts.exited ??
    (async () => {
      while (alive(pid)) await sleep(25);
    })();
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const timedOut = await Promise.race([gone.then(() => false), sleep(graceMs).then(() => true)]);
  if (timedOut) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
    await Promise.race([gone, sleep(2000)]);
  }
}

/** SIGKILLs a list of PIDs, ignoring those already gone. */
export function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

/** Waits until a TCP connect to host:port succeeds; fails early if `daemon` exits. */
export async function waitForPort(
  host: string,
  port: number,
  opts: { timeoutMs?: number; daemon?: Daemon; netns?: string } = {},
): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15000);
  while (Date.now() < deadline) {
    if (opts.daemon?.hasExited()) {
      throw new Error(
        `${opts.daemon.name} exited before listening on ${host}:${port}:\n${tailLog(opts.daemon.logPath)}`,
      );
    }
    const ok = opts.netns
      ? await probeInNetns(opts.netns, host, port)
      : await tcpProbe(host, port, 1000);
    if (ok) return;
    await sleep(50);
  }
  const log = opts.daemon ? `\n${tailLog(opts.daemon.logPath)}` : "";
  throw new Error(
    `timed out waiting for ${host}:${port}${opts.netns ? ` in netns ${opts.netns}` : ""}${log}`,
  );
}

/** One TCP connect attempt from this process. */
export function tcpProbe(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: timeoutMs });
    const finish = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once("connect", () => finish(true));
    sock.once("timeout", () => finish(false));
    sock.once("error", () => finish(false));
  });
}

const PROBE_JS =
  "const s=require('net').connect({host:process.argv[1],port:+process.argv[2],timeout:+process.argv[3]});" +
  "s.on('connect',()=>process.exit(0));s.on('timeout',()=>process.exit(2));s.on('error',()=>process.exit(1));";

/** One TCP connect attempt made from inside a network namespace (no nc here: a node one-liner). */
export function probeInNetns(
  netns: string,
  host: string,
  port: number,
  timeoutMs = 1000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        netns,
        process.execPath,
        "-e",
        PROBE_JS,
        host,
        String(port),
        String(timeoutMs),
      ],
      {
        stdio: "ignore",
      },
    );
    child.once("exit", (code) => resolve(code === 0));
    child.once("error", () => resolve(false));
  });
}

/** The last lines of a log file, for error messages. */
export function tailLog(path: string, lines = 20): string {
  try {
    return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
