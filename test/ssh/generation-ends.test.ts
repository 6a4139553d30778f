import { describe, expect, it } from "vitest";
import { GenerationEnds } from "../../src/ssh/generation-ends.js";

describe("GenerationEnds", () => {
  it("calls each waiter of a generation once when it ends, and forgets them", () => {
    const g = new GenerationEnds();
    const calls: string[] = [];
    g.on(1, true, () => calls.push("a"));
    g.on(1, true, () => calls.push("b"));
    g.on(2, true, () => calls.push("other"));
    expect(g.size).toBe(3);
    g.end(1);
    g.end(1);
    expect(calls).toEqual(["a", "b"]);
    expect(g.size).toBe(1);
  });

  it("a waiter removed before the end is not called and not kept", () => {
    const g = new GenerationEnds();
    let called = false;
    const off = g.on(1, true, () => {
      called = true;
    });
    off();
    off();
    expect(g.size).toBe(0);
    g.end(1);
    expect(called).toBe(false);
  });

  it("a generation already gone calls back on the next tick, unless removed first", async () => {
    const g = new GenerationEnds();
    const calls: string[] = [];
    g.on(1, false, () => calls.push("late"));
    g.on(1, false, () => calls.push("removed"))();
    expect(calls).toEqual([]);
    await g.wait(1, false);
    expect(calls).toEqual(["late"]);
    expect(g.size).toBe(0);
  });
});
