import { describe, expect, it } from "vitest";
import { detectIndent, mergeOrdered, parseJsonText, renderLike } from "../../src/web/json-text.js";

describe("json-text", { timeout: 10_000 }, () => {
  it("says where a file does not parse (line and column)", () => {
    const res = parseJsonText('{\n  "a": 1,\n  "b" 2\n}');
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.line).toBe(3);
    expect(res.column).toBe(7);
    expect(res.message).toMatch(/Unexpected number/);
  });

  it("points at the end of a truncated file", () => {
    const res = parseJsonText('{\n  "a": ');
    expect(res.ok).toBe(false);
    if (!res.ok) expect(res.line).toBe(2);
  });

  it("keeps the original key order, appends new keys, drops removed ones", () => {
    const original = { b: { y: 1, x: 2, z: 0 }, a: 1, unknown: { deep: true } };
    const edited = { a: 5, unknown: { deep: true }, b: { x: 3, y: 1, w: 9 }, c: "new" };
    const merged = mergeOrdered(original, edited) as Record<string, Record<string, unknown>>;
    expect(Object.keys(merged)).toEqual(["b", "a", "unknown", "c"]);
    expect(Object.keys(merged.b!)).toEqual(["y", "x", "w"]);
    expect(merged.b).toEqual({ y: 1, x: 3, w: 9 });
  });

  it("writes with the file's own indentation and final newline", () => {
    expect(detectIndent('{\n    "a": 1\n}')).toBe("    ");
    expect(detectIndent('{\n\t"a": 1\n}')).toBe("\t");
    expect(detectIndent("{}")).toBe("  ");
    expect(renderLike('{\n    "a": 1\n}\n', { a: 2 })).toBe('{\n    "a": 2\n}\n');
    expect(renderLike('{"a": 1}', { a: 2 })).toBe('{\n  "a": 2\n}');
  });
});
