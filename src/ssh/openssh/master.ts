/**
 * The ControlMaster of a link: the user's own (found with `ssh -O check` at the ControlPath of
 * their config, never stopped here) or one the sidecar starts:
 *   ssh -M -S SOCKET -o ControlPersist=10 -N -v [-o BatchMode=yes] [-F CONFIG] TARGET
 * With ControlPersist, ssh goes to the background once it is connected and listening, and the
 * foreground process exits 0: that exit is "ready" (or its stderr says why not). The background
 * master keeps writing its `-v` log to the same pipe. It ends 10 s (persistSeconds) after its
 * last client, and the link holds one (MuxWatch) while it uses it, so a sidecar that died
 * leaves no master for long.
 */
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { masterFailure, type FailureContext } from "./errors.js";
import { MasterLog } from "./master-log.js";
import type { OpenSshTarget, Resolved } from "./resolve.js";
import { missingSsh, runSsh } from "./run.js";

/** The hook the prompts work fills in: ssh asks this program (SSH_ASKPASS) instead of failing. */
export interface AskpassHook {
  /** absolute path of an SSH_ASKPASS program */
  program: string;
  /** more environment for it (e.g. how to reach the sidecar) */
  env?: Record<string, string>;
  /** why its last question went unanswered: the true cause of a login that then failed */
  unanswered?: () => Error | undefined;
}

export interface MasterSettings {
  sshPath: string;
  askpass?: AskpassHook;
  /** ServerAliveInterval when the config sets none, ms */
  keepaliveMs: number;
  keepaliveCount: number;
  /** ConnectTimeout when the config sets none, ms */
  connectTimeoutMs: number;
  /** how long the whole start (connect, authenticate) may take, ms */
  startTimeoutMs: number;
  /** ControlPersist: the master ends this long after its last client */
  persistSeconds: number;
}

/** The options given to our master on top of the user's config (the command line wins). */
export function masterOptions(
  r: Resolved,
  s: MasterSettings,
  ciphers: string[] | undefined,
): string[] {
  const o = [
    `ControlPersist=${s.persistSeconds}`,
    "ClearAllForwardings=yes",
    "PermitLocalCommand=no",
    "RemoteCommand=none",
    "RequestTTY=no",
  ];
  if (!s.askpass) o.push("BatchMode=yes");
  if (r.serverAliveInterval === 0)
    o.push(
      `ServerAliveInterval=${Math.max(1, Math.ceil(s.keepaliveMs / 1000))}`,
      `ServerAliveCountMax=${s.keepaliveCount}`,
    );
  if (r.connectTimeout === undefined)
    o.push(`ConnectTimeout=${Math.max(1, Math.ceil(s.connectTimeoutMs / 1000))}`);
  // accept-new only where the user set nothing (ssh -G says `ask` then), as the ssh2 side does
  if (r.strictHostKeyChecking === "ask" && !r.strictHostKeyCheckingSet)
    o.push("StrictHostKeyChecking=accept-new");
  if (ciphers) o.push(`Ciphers=${ciphers.join(",")}`);
  return o.flatMap((x) => ["-o", x]);
}

export interface StartedMaster {
  log: MasterLog;
  /** resolves when the master's stderr closed (it exited) */
  ended: Promise<void>;
}

/** Start a master at `controlPath`; rejects with the cause from its log. */
export function startMaster(
  t: OpenSshTarget,
  r: Resolved,
  controlPath: string,
  s: MasterSettings,
  ctx: FailureContext,
  ciphers?: string[],
): Promise<StartedMaster> {
  const args = [
    "-M",
    "-S",
    controlPath,
    "-N",
    "-v",
    "-T",
    "-x",
    ...masterOptions(r, s, ciphers),
    ...t.options,
    "--",
    t.host,
  ];
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (s.askpass) {
    Object.assign(env, s.askpass.env ?? {});
    env.SSH_ASKPASS = s.askpass.program;
    env.SSH_ASKPASS_REQUIRE = "force";
  }
  const log = new MasterLog();
  return new Promise((resolve, reject) => {
    const child = spawn(s.sshPath, args, { stdio: ["ignore", "ignore", "pipe"], env });
    let timedOut = false;
    const ended = new Promise<void>((res) => {
      child.stderr.on("end", res);
      child.stderr.on("close", res);
    });
    void ended.then(() => log.forwarded.ended());
    child.stderr.on("data", (b: Buffer) => log.feed(b));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
    }, s.startTimeoutMs);
    child.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(missingSsh(s.sshPath, err));
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0 && !timedOut) {
        log.markStarted();
        return resolve({ log, ended });
      }
      rmSync(controlPath, { force: true });
      // the last lines may still be in the pipe (a ProxyCommand may hold it open: bounded)
      void Promise.race([ended, new Promise((r) => setTimeout(r, 1000))]).then(() =>
        reject(masterFailure(log.startLines, ctx, { code, timedOut, timeoutMs: s.startTimeoutMs })),
      );
    });
  });
}

/** The arguments every client of a master starts with. */
export function clientOptions(controlPath: string, t: OpenSshTarget): string[] {
  return ["-S", controlPath, "-o", "ControlMaster=no", "-o", "LogLevel=ERROR", ...t.options];
}

/** True when a master answers `ssh -O check` at `controlPath`. */
export async function masterRunning(
  sshPath: string,
  t: OpenSshTarget,
  controlPath: string,
): Promise<boolean> {
  const r = await runSsh(sshPath, ["-O", "check", ...clientOptions(controlPath, t), "--", t.host], {
    timeoutMs: 10_000,
  });
  return r.code === 0 && /Master running/.test(r.stderr);
}

/** Stop a master the sidecar started (never the user's) and remove its socket. */
export function stopMaster(pid: number | undefined, controlPath: string): void {
  if (pid !== undefined && pid > 1) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      /* gone already */
    }
  }
  rmSync(controlPath, { force: true });
}
