// An OpenSSH ControlMaster opened the way a user opens one (`ssh -M -S SOCK -o ControlPersist=yes
// -N -F CONFIG HOST`), any code typed through SSH_ASKPASS; later `ssh -S SOCK HOST ...` reuses it
// without authenticating again. Stopped with `-O exit`, then by PID.
import { execFile, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { alive, killAll } from "./procs.js";
import { MARKER_ENV, registerPid, registerStopper, unregisterPid } from "./registry.js";

const run = promisify(execFile);

export interface ControlMasterOptions {
  configPath: string;
  alias: string;
  socketPath: string;
  /** Added to the environment of `ssh` (e.g. OtpNode.askpassEnv()). */
  env?: Record<string, string>;
  /** Test bed dir set as the marker in the master's environment, for leak checks. */
  marker?: string;
  /** @default 20000 */
  timeoutMs?: number;
}

export interface ControlMaster {
  socketPath: string;
  /** The master's PID, as `ssh -O check` reports it (the process that stays in the background). */
  pid: number;
  /** `ssh -O check`: true while the master answers. */
  check(): Promise<boolean>;
  /** `ssh -O exit`, then SIGKILL if it lingers; removes the socket. */
  stop(): Promise<void>;
}

/** Opens a master and resolves once it has authenticated and gone to the background. */
export async function openControlMaster(o: ControlMasterOptions): Promise<ControlMaster> {
  const base = ["-F", o.configPath, "-S", o.socketPath];
  const child = spawn(
    "ssh",
    [...base, "-M", "-o", "ControlPersist=yes", "-N", "-o", "ConnectTimeout=10", o.alias],
    {
      env: { ...process.env, ...o.env, ...(o.marker ? { [MARKER_ENV]: o.marker } : {}) },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  // With ControlPersist the foreground ssh exits once authenticated, leaving the master behind.
  const timeoutMs = o.timeoutMs ?? 20000;
  const code = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve(`no answer within ${timeoutMs} ms`);
    }, timeoutMs);
    child.once("exit", (c, sig) => {
      clearTimeout(timer);
      resolve(c ?? sig ?? -1);
    });
  });
  if (code !== 0) {
    throw new Error(`ssh -M ${o.alias} failed (${code}): ${stderr.trim() || "no message"}`);
  }
  const check = async (): Promise<{ ok: boolean; pid: number }> => {
    try {
      const { stderr: out } = await run("ssh", [...base, "-O", "check", o.alias], {
        timeout: 10000,
      });
      return { ok: true, pid: Number(/pid=(\d+)/.exec(out)?.[1] ?? 0) };
    } catch {
      return { ok: false, pid: 0 };
    }
  };
  const first = await check();
  if (!first.ok || first.pid === 0) {
    throw new Error(`ssh -M ${o.alias} exited 0 but no master answers on ${o.socketPath}`);
  }
  const pid = first.pid;
  registerPid(pid);
  const stop = async () => {
    unregisterStop();
    await run("ssh", [...base, "-O", "exit", o.alias], { timeout: 10000 }).catch(() => undefined);
    for (let i = 0; i < 60 && alive(pid); i++) await sleep(50);
    killAll([pid]);
    unregisterPid(pid);
    rmSync(o.socketPath, { force: true });
  };
  const unregisterStop = registerStopper(stop);
  return { socketPath: o.socketPath, pid, check: async () => (await check()).ok, stop };
}
