// The one timeout helper: a value in time, the fallback or the error when late, and timers that
// neither linger nor keep the process alive.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { sleep, within, withTimeout } from "../../src/util/timeout.js";

const resolveAfter = <T>(ms: number, v: T): Promise<T> =>
  new Promise((r) => setTimeout(() => r(v), ms));

describe("within", () => {
  it("gives the value when it comes in time", async () => {
    expect(await within(resolveAfter(5, "v"), 1000, "late")).toBe("v");
  });
  it("gives the fallback once the time is up", async () => {
    const t0 = Date.now();
    expect(await within(resolveAfter(2000, "v"), 50, "late")).toBe("late");
    expect(Date.now() - t0).toBeLessThan(1500);
  });
  it("passes a rejection on", async () => {
    await expect(within(Promise.reject(new Error("boom")), 1000, "late")).rejects.toThrow("boom");
  });
});

describe("withTimeout", () => {
  it("gives the value when it comes in time", async () => {
    expect(await withTimeout(resolveAfter(5, 7), 1000, () => new Error("late"))).toBe(7);
  });
  it("rejects with the given error once the time is up", async () => {
    await expect(
      withTimeout(resolveAfter(2000, 7), 50, () => new Error("no pgid")),
    ).rejects.toThrow("no pgid");
  });
});

describe("sleep", () => {
  it("waits about that long", async () => {
    const t0 = Date.now();
    await sleep(60);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(55);
  });
});

describe("sleep in a process with nothing else to wait for", () => {
  // a child Node that sleeps and then prints: with `unref` it exits before printing
  const child = (opts: string): string => {
    const url = pathToFileURL(join(import.meta.dirname, "../../src/util/timeout.ts")).href;
    const code = `const { sleep } = await import(${JSON.stringify(url)}); await sleep(200${opts}); process.stdout.write("woke");`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      encoding: "utf8",
      timeout: 20_000,
    });
    return r.stdout;
  };
  it("keeps the process alive", () => {
    expect(child("")).toBe("woke");
  });
  it("lets it exit with unref", () => {
    expect(child(", { unref: true }")).toBe("");
  });
});
