import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../../src/util/duration.js";

describe("parseDuration", () => {
  it("reads ms, s, m, h, combinations and bare seconds", () => {
    expect(parseDuration("1500ms")).toBe(1500);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("0.5s")).toBe(500);
    expect(parseDuration("2")).toBe(2000);
  });

  it("refuses anything else with a message naming the flag and the value", () => {
    for (const bad of ["", "abc", "5x", "-1s", "1s junk", "s"]) {
      expect(() => parseDuration(bad, "--timeout")).toThrow(
        /Expected `--timeout` to be a duration/,
      );
    }
  });

  it("formats back into something it reads", () => {
    for (const ms of [250, 1500, 90_000, 7_200_000])
      expect(Math.abs(parseDuration(formatDuration(ms)) - ms) / ms).toBeLessThan(0.05);
  });
});
