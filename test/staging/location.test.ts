// Staging URLs: schemes, {cwd}, pool paths, and the errors for bad ones.
import { describe, expect, it } from "vitest";
import {
  childLocation,
  formatLocation,
  parseLocation,
  redactUrl,
} from "../../src/staging/location.js";

describe("parseLocation", () => {
  it("reads every scheme", () => {
    expect(parseLocation("file:///data/x")).toEqual({ kind: "local", path: "/data/x" });
    expect(parseLocation("pw://{cwd}/in/", { cwd: "/pw/jobs/7" })).toEqual({
      kind: "local",
      path: "/pw/jobs/7/in",
    });
    expect(parseLocation("s3://my-bucket/a/b.txt")).toEqual({
      kind: "s3",
      bucket: "my-bucket",
      key: "a/b.txt",
    });
    expect(parseLocation("gs://my-bucket")).toEqual({ kind: "gcs", bucket: "my-bucket", key: "" });
    expect(parseLocation("ssh://me@head:2222/scratch/x")).toEqual({
      kind: "pool",
      target: "me@head:2222",
      path: "/scratch/x",
    });
  });

  it("puts bare absolute paths on the given host", () => {
    expect(parseLocation("/scratch/run", { host: "cluster" })).toEqual({
      kind: "pool",
      target: "cluster",
      path: "/scratch/run",
    });
    expect(parseLocation("/scratch/run", { host: "local" })).toEqual({
      kind: "local",
      path: "/scratch/run",
    });
    expect(parseLocation("head:/x/y", { cliForms: true })).toEqual({
      kind: "pool",
      target: "head",
      path: "/x/y",
    });
    expect(parseLocation("/x/y", { cliForms: true })).toEqual({ kind: "local", path: "/x/y" });
  });

  it("refuses an unknown scheme", () => {
    expect(() => parseLocation("ftp://host/x")).toThrow(/unknown scheme `ftp:\/\/`/);
    try {
      parseLocation("azure://c/x");
    } catch (e) {
      expect((e as { code: string }).code).toBe("STAGING_INVALID");
    }
  });

  it("refuses relative paths", () => {
    expect(() => parseLocation("pw://data/x")).toThrow(/relative/);
    expect(() => parseLocation("data/x", { host: "pool" })).toThrow(/relative/);
    expect(() => parseLocation("file://x")).toThrow(/relative/);
  });

  it("needs cwd for {cwd}", () => {
    expect(() => parseLocation("pw://{cwd}/x")).toThrow(/no working directory/);
    expect(() => parseLocation("pw://{cwd}/x", { cwd: "rel" })).toThrow(/not absolute/);
  });

  it("refuses bad buckets and dot segments in keys", () => {
    expect(() => parseLocation("s3://B/x")).toThrow(/bucket/);
    expect(() => parseLocation("s3://bucket/a/../b")).toThrow(/\.\./);
  });

  it("never shows credentials", () => {
    expect(redactUrl("ssh://u:secret@h/x")).toBe("ssh://u@h/x");
    expect(redactUrl("s3://b/k?X-Amz-Signature=abc")).not.toContain("abc");
    expect(formatLocation({ kind: "pool", target: "u:pw@h", path: "/x" })).toBe("ssh://u@h/x");
    expect(() => parseLocation("ftp://u:hunter2@h/x")).toThrow(/^(?!.*hunter2)/);
  });

  it("joins entries", () => {
    expect(childLocation({ kind: "s3", bucket: "b", key: "p" }, "a/b")).toEqual({
      kind: "s3",
      bucket: "b",
      key: "p/a/b",
    });
    expect(childLocation({ kind: "local", path: "/r" }, "a")).toEqual({
      kind: "local",
      path: "/r/a",
    });
  });
});
