import { describe, expect, it } from "vitest";
import { ReplayGuard } from "../../src/rpc/replay-guard.js";

describe("ReplayGuard", () => {
  it("accepts a fresh signature once and drops its replay", () => {
    const g = new ReplayGuard();
    const now = Date.now();
    expect(g.check("a", now, now)).toBeUndefined();
    expect(g.check("a", now, now)).toBe("replay");
    expect(g.check("b", now, now)).toBeUndefined();
  });

  it("drops messages outside the window, in the past or the future", () => {
    const g = new ReplayGuard(1000);
    const now = 1_000_000;
    expect(g.check("old", now - 1001, now)).toBe("stale");
    expect(g.check("future", now + 1001, now)).toBe("stale");
    expect(g.check("edge", now - 1000, now)).toBeUndefined();
  });

  it("keeps memory bounded and never admits a forgotten replay (the floor)", () => {
    const g = new ReplayGuard(60_000, 100);
    const now = 1_000_000;
    for (let i = 0; i < 1000; i++) expect(g.check(`s${i}`, now - 1000 + i, now)).toBeUndefined();
    expect(g.size).toBeLessThanOrEqual(100);
    // s0 was forgotten, but its timestamp is at or below the floor: refused as stale, not accepted
    expect(g.check("s0", now - 1000, now)).toBe("stale");
    // recent ones are still remembered
    expect(g.check("s999", now - 1, now)).toBe("replay");
    // a new message newer than the floor is accepted
    expect(g.check("fresh", now, now)).toBeUndefined();
  });

  it("forgets expired signatures first without raising the floor", () => {
    const g = new ReplayGuard(1000, 10);
    for (let i = 0; i < 10; i++) expect(g.check(`old${i}`, 100, 500)).toBeUndefined();
    // much later, the old ones are expired; pruning them must not refuse a message at t=1500
    for (let i = 0; i < 5; i++) expect(g.check(`new${i}`, 1500 + i, 2000)).toBeUndefined();
    expect(g.check("later", 1600, 2000)).toBeUndefined();
    expect(g.size).toBeLessThanOrEqual(10);
  });
});
