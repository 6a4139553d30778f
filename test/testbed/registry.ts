// Registry of everything the test bed starts, so it is stopped even when a test fails:
// async stoppers for stopAll() (afterAll, CLI shutdown), and a synchronous SIGKILL pass at exit.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Marker set in the environment of every daemon, so leftovers (e.g. slurmstepd) can be found. */
export const MARKER_ENV = "PSC_TESTBED_DIR";

/** A fresh private directory under os.tmpdir(), removed by the registry at exit. */
export function makeTempDir(kind: string): string {
  const dir = mkdtempSync(join(tmpdir(), `psc-tb-${kind}-`));
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  tempDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

// ---- registry: whatever is started gets stopped, even when a test fails ----

type Stopper = () => Promise<void>;
const pids = new Set<number>();
const stoppers = new Set<Stopper>();
const tempDirs = new Set<string>();
const syncCleanups = new Set<() => void>();

export function registerPid(pid: number): void {
  pids.add(pid);
  installExitHook();
}
export function unregisterPid(pid: number): void {
  pids.delete(pid);
}

/** Registers an async stop function for `stopAll()`; returns a function to unregister it. */
export function registerStopper(stop: Stopper): () => void {
  stoppers.add(stop);
  installExitHook();
  return () => stoppers.delete(stop);
}

/** Registers a synchronous last-resort cleanup for process exit (e.g. `ip netns del`). */
export function registerExitCleanup(fn: () => void): () => void {
  syncCleanups.add(fn);
  installExitHook();
  return () => syncCleanups.delete(fn);
}

/**
 * Stops everything registered, newest first, then removes the remaining temp dirs from
 * makeTempDir(). Safe to call more than once. (Vitest's forked workers may end without running
 * "exit" handlers, so this, via stopAllAfterAll(), is the cleanup that counts in tests.)
 */
export async function stopAll(): Promise<void> {
  const list = [...stoppers].reverse();
  stoppers.clear();
  for (const stop of list) {
    try {
      await stop();
    } catch (err) {
      console.warn(`testbed: stop failed: ${String(err)}`);
    }
  }
  for (const dir of tempDirs) removeTempDir(dir);
}

let hooked = false;
function installExitHook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    // Synchronous only: SIGKILL what is still running, then run last-resort cleanups.
    for (const pid of pids) sigkill([...childrenTree(pid), pid]);
    for (const dir of tempDirs) sigkill(markedPids(dir));
    for (const fn of syncCleanups) {
      try {
        fn();
      } catch {
        /* best effort */
      }
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
  // Vitest ends its forked workers with SIGTERM, which skips "exit" handlers: turn it into an exit.
  if (process.env.VITEST && process.listenerCount("SIGTERM") === 0) {
    process.on("SIGTERM", () => process.exit(143));
  }
}

function sigkill(list: number[]): void {
  for (const p of list) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}

function procEntries(): number[] {
  return readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** All descendants of `pid` by parent PID, from /proc. */
export function childrenTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of procEntries()) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), p]);
    } catch {
      /* raced with exit */
    }
  }
  const out: number[] = [];
  const queue = [...(children.get(pid) ?? [])];
  while (queue.length > 0) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

/** PIDs (other than ours) whose environment has MARKER_ENV=dir, e.g. slurmstepd left behind. */
export function markedPids(dir: string, key = MARKER_ENV): number[] {
  const needle = `${key}=${dir}`;
  return procEntries().filter((p) => {
    if (p === process.pid) return false;
    try {
      return readFileSync(`/proc/${p}/environ`, "utf8").split("\0").includes(needle);
    } catch {
      return false;
    }
  });
}
