/**
 * A lock beside an environment on its host, held by a small shell process for as long as we
 * hold it: `flock` on `<parent>/.<name>.parsl-sidecar.lock` when the host has flock (the kernel
 * drops it if the holder dies), else an atomic `mkdir` of `<...>.lock.d` with the holder's host
 * and pid inside and stale-lock detection (a dead pid on the same host, or no heartbeat for 2 min).
 * Releasing closes the holder's stdin; losing the connection does the same. The holder also
 * watches the tool running under the lock: if its stdin closes while a tool's process group is
 * registered (the sidecar died or lost the connection), it stops that group before letting go,
 * so that no orphaned conda or uv keeps writing into an environment somebody else now locks.
 * The holder is src/remote/env/lock.sh.
 */
import { createInterface } from "node:readline";
import { SidecarError } from "../errors.js";
import type { Host, HostProcess } from "../ssh/host.js";
import { shCommand } from "../remote/index.js";
import { within, withTimeout } from "../util/timeout.js";

export interface LockOptions {
  /** give up after this long with ENV_LOCKED @default 1_800_000 (30 min: conda installs are slow) */
  timeoutMs?: number;
  /** use the mkdir lock even when flock exists (tests) */
  mechanism?: "auto" | "flock" | "mkdir";
  /** called once when another holder is seen, with its `host pid` */
  onWait?: (owner: string) => void;
  /** extra environment for the holder (tests restrict PATH) */
  env?: Record<string, string>;
}

export interface HeldLock {
  path: string;
  mechanism: "flock" | "mkdir";
  /** stop this process group on the host if we go away while holding the lock */
  watch(pgid: number): void;
  /** the watched group ended normally */
  unwatch(): void;
  release(): Promise<void>;
}

/** The lock path for a directory: `<parent>/.<basename>.parsl-sidecar.lock`. */
export function lockPathFor(dir: string): string {
  const clean = dir.replace(/\/+$/, "");
  const i = clean.lastIndexOf("/");
  return `${clean.slice(0, i) || "/"}/.${clean.slice(i + 1)}.parsl-sidecar.lock`.replace(
    /^\/\//,
    "/",
  );
}

/** Take the lock at `lock` on `host`; resolves when held. */
export async function acquireLock(
  host: Host,
  lock: string,
  opts: LockOptions = {},
): Promise<HeldLock> {
  const timeoutMs = opts.timeoutMs ?? 1_800_000;
  const proc: HostProcess = await host.spawn(
    shCommand("env/lock.sh", [lock, opts.mechanism ?? "auto"]),
    opts.env ? { env: opts.env } : {},
  );
  proc.stderr.resume();
  const lines = createInterface({ input: proc.stdout });
  let owner = "";
  const taking = new Promise<HeldLock>((resolve, reject) => {
    let done = false;
    const finish = (err: Error | undefined, held?: HeldLock): void => {
      if (done) return;
      done = true;
      if (err) reject(err);
      else resolve(held!);
    };
    lines.on("line", (line) => {
      if (line.startsWith("WAIT")) {
        owner = line.slice(5).trim();
        opts.onWait?.(owner);
      } else if (line.startsWith("ERROR")) {
        finish(
          new SidecarError(
            "ENV_FAILED",
            `Cannot lock the environment on ${host.target}: ${line.slice(6)}`,
            { data: { target: host.target, lock } },
          ),
        );
      } else if (line.startsWith("LOCKED")) {
        const mechanism = line.endsWith("flock") ? "flock" : "mkdir";
        let released: Promise<void> | undefined;
        finish(undefined, {
          path: mechanism === "flock" ? lock : `${lock}.d`,
          mechanism,
          watch: (pgid) => {
            if (Number.isInteger(pgid) && pgid > 1 && !proc.stdin.writableEnded)
              proc.stdin.write(`watch ${pgid}\n`);
          },
          unwatch: () => {
            if (!proc.stdin.writableEnded) proc.stdin.write("unwatch\n");
          },
          release: () => {
            released ??= (async () => {
              lines.close();
              // stdout may be the same duplex as stdin (an SSH channel): keep it flowing so it can close
              proc.stdout.resume();
              proc.stdin.end();
              const exited = proc.exited.then(
                () => true,
                () => true,
              );
              if (!(await within(exited, 10_000, false)))
                void proc.kill("SIGTERM").catch(() => undefined);
              await exited;
            })();
            return released;
          },
        });
      }
    });
    void proc.exited.then((r) => {
      finish(
        new SidecarError(
          "ENV_FAILED",
          `The lock holder for ${lock} on ${host.target} ended before taking the lock (exit ${r.exitCode ?? r.signal})`,
          { data: { target: host.target, lock } },
        ),
      );
    });
  });
  try {
    return await withTimeout(
      taking,
      timeoutMs,
      () =>
        new SidecarError(
          "ENV_LOCKED",
          `Another ensure holds ${lock} on ${host.target}${owner ? ` (${owner})` : ""} and did not finish within ${Math.round(timeoutMs / 1000)} s; try again later, or remove the lock if its holder is gone`,
          { data: { target: host.target, lock, owner } },
        ),
    );
  } catch (err) {
    // not taken (refused, the holder gone, or the time is up): the holder must not take it later
    proc.kill("SIGTERM").catch(() => undefined);
    proc.stdin.destroy();
    throw err;
  }
}
