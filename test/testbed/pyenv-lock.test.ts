// A pyenv rehash lock left by a killed session is removed; a fresh one (a rehash running now)
// is not.
import { mkdirSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { clearStalePyenvLock } from "./pyenv-lock.js";
import { makeTempDir } from "./registry.js";

describe("clearStalePyenvLock", () => {
  it("removes a lock older than a second while no rehash runs, keeps a fresh one", () => {
    const home = makeTempDir("pyenv-home");
    expect(clearStalePyenvLock(home)).toBe(false); // none
    const shims = join(home, ".pyenv", "shims");
    mkdirSync(shims, { recursive: true });
    const lock = join(shims, ".pyenv-shim");
    writeFileSync(lock, "");
    expect(clearStalePyenvLock(home)).toBe(false);
    expect(existsSync(lock)).toBe(true);
    const old = new Date(Date.now() - 10_000);
    utimesSync(lock, old, old);
    expect(clearStalePyenvLock(home)).toBe(true);
    expect(existsSync(lock)).toBe(false);
  });
});
