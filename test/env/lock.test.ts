// The environment lock for real on this machine: flock and the mkdir fallback, waiting, stale
// locks left by a killed holder, the timeout.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { acquireLock, lockPathFor } from "../../src/env/lock.js";
import { isSidecarError } from "../../src/errors.js";
import { LocalHost } from "../../src/ssh/local-host.js";
import { cleanupTmp, tmp } from "./helpers.js";

afterAll(cleanupTmp);

/** Processes whose command line names `lock`. */
function holders(lock: string): number {
  let n = 0;
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(lock)) n++;
    } catch {
      // gone meanwhile
    }
  }
  return n;
}
const host = new LocalHost();

describe("environment lock", { timeout: 60_000 }, () => {
  it("lives beside the directory it guards", () => {
    expect(lockPathFor("/opt/conda/envs/p1")).toBe("/opt/conda/envs/.p1.parsl-sidecar.lock");
    expect(lockPathFor("/opt/conda/envs/p1/")).toBe("/opt/conda/envs/.p1.parsl-sidecar.lock");
    expect(lockPathFor("/p1")).toBe("/.p1.parsl-sidecar.lock");
  });

  for (const mechanism of ["flock", "mkdir"] as const) {
    it(`${mechanism}: a second holder waits until the first releases`, async () => {
      const lock = lockPathFor(join(tmp(), "envs/x"));
      const first = await acquireLock(host, lock, { mechanism });
      expect(first.mechanism).toBe(mechanism);
      let waitedFor = "";
      let got = false;
      const second = acquireLock(host, lock, { mechanism, onWait: (o) => (waitedFor = o) }).then(
        (l) => {
          got = true;
          return l;
        },
      );
      await sleep(1500);
      expect(got).toBe(false);
      expect(waitedFor).toMatch(/^\S+ \d+$/);
      await first.release();
      const held = await second;
      expect(got).toBe(true);
      await held.release();
      if (mechanism === "mkdir") expect(existsSync(`${lock}.d`)).toBe(false);
      const deadline = Date.now() + 15_000;
      while (holders(lock) > 0 && Date.now() < deadline) await sleep(200);
      expect(holders(lock)).toBe(0);
    });

    it(`${mechanism}: a holder killed with SIGKILL does not block the next one`, async () => {
      const lock = lockPathFor(join(tmp(), "envs/y"));
      const first = await acquireLock(host, lock, { mechanism });
      const owner = readFileSync(mechanism === "flock" ? lock : `${lock}.d/owner`, "utf8").trim();
      const pid = Number(owner.split(" ")[1]);
      process.kill(pid, "SIGKILL");
      const next = await acquireLock(host, lock, { mechanism, timeoutMs: 20_000 });
      expect(next.mechanism).toBe(mechanism);
      await next.release();
      await first.release();
      // nothing of either holder is left (the mkdir heartbeat loop ends with its holder)
      const deadline = Date.now() + 15_000;
      while (holders(lock) > 0 && Date.now() < deadline) await sleep(200);
      expect(holders(lock)).toBe(0);
    });
  }

  it("gives up after the timeout with ENV_LOCKED naming the holder", async () => {
    const lock = lockPathFor(join(tmp(), "envs/z"));
    const first = await acquireLock(host, lock);
    try {
      await acquireLock(host, lock, { timeoutMs: 1000 });
      expect.fail("expected ENV_LOCKED");
    } catch (err) {
      expect(isSidecarError(err, "ENV_LOCKED")).toBe(true);
      expect((err as Error).message).toMatch(
        /^Another ensure holds .* on local \(\S+ \d+\) and did not finish within 1 s/,
      );
    } finally {
      await first.release();
    }
  });

  it("an unwritable place for the lock is ENV_FAILED, not a hang", async () => {
    try {
      await acquireLock(host, "/proc/self/.x.parsl-sidecar.lock", { timeoutMs: 10_000 });
      expect.fail("expected ENV_FAILED");
    } catch (err) {
      expect(isSidecarError(err, "ENV_FAILED")).toBe(true);
      expect((err as Error).message).toContain("Cannot lock the environment on local: cannot");
    }
  });
});
