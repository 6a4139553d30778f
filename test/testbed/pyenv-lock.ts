// Root's ~/.bashrc on this machine kind runs `pyenv init -`, whose rehash holds
// ~/.pyenv/shims/.pyenv-shim as a lock. A session killed mid-rehash (the tests kill sessions on
// purpose) leaves the lock behind, and from then on every login to a test sshd prints "pyenv:
// cannot rehash" on stderr (PYENV_REHASH_TIMEOUT=0, set by sshd.ts; 60 s of waiting without it).
// A rehash takes well under a second, so a lock older than that while no pyenv-rehash runs is
// one nobody will release: the test bed removes it when it starts an sshd and after it kills
// sessions.
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const STALE_MS = 1000;

function rehashRunning(): boolean {
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("pyenv-rehash")) return true;
    } catch {
      // gone
    }
  }
  return false;
}

/** Removes a stale pyenv rehash lock under `home`; whether there was one. */
export function clearStalePyenvLock(home: string = homedir()): boolean {
  const lock = join(home, ".pyenv", "shims", ".pyenv-shim");
  let age: number;
  try {
    age = Date.now() - statSync(lock).mtimeMs;
  } catch {
    return false;
  }
  if (age < STALE_MS || rehashRunning()) return false;
  rmSync(lock, { force: true });
  return true;
}

/** The same, once the sessions just killed have had time to die. */
export function clearStalePyenvLockSoon(): void {
  setTimeout(() => clearStalePyenvLock(), 2 * STALE_MS).unref();
}
