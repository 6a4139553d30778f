// known_hosts: plain, [host]:port, hashed, wildcard/negated patterns, @revoked, recording.
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  fingerprint,
  hostMatches,
  lookupHostKey,
  recordHostKey,
} from "../../src/ssh/known-hosts.js";
import { makeTempDir, removeTempDir } from "../testbed/registry.js";

const dir = makeTempDir("known-hosts");
afterAll(() => removeTempDir(dir));

let n = 0;
function newKeyBlob(): Buffer {
  const path = join(dir, `key${n++}`);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path]);
  return Buffer.from(readFileSync(`${path}.pub`, "utf8").split(" ")[1]!, "base64");
}

describe("known_hosts", () => {
  const a = newKeyBlob();
  const b = newKeyBlob();
  const salt = Buffer.from("0123456789abcdefghij");
  const hashed = `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update("[10.1.1.1]:2222").digest("base64")}`;
  const file = join(dir, "kh");
  writeFileSync(
    file,
    [
      "# comment",
      `plain.example,192.0.2.9 ssh-ed25519 ${a.toString("base64")}`,
      `[plain.example]:2222 ssh-ed25519 ${b.toString("base64")}`,
      `${hashed} ssh-ed25519 ${a.toString("base64")}`,
      `*.wild.example,!bad.wild.example ssh-ed25519 ${a.toString("base64")}`,
      `@revoked revoked.example ssh-ed25519 ${b.toString("base64")}`,
      "",
    ].join("\n"),
  );

  it("matches plain names, the [host]:port form and hashed entries", () => {
    expect(lookupHostKey([file], ["plain.example"], a).status).toBe("match");
    expect(lookupHostKey([file], ["192.0.2.9"], a).status).toBe("match");
    expect(lookupHostKey([file], ["[plain.example]:2222"], b).status).toBe("match");
    expect(lookupHostKey([file], ["[plain.example]:2222"], a).status).toBe("mismatch");
    expect(lookupHostKey([file], ["[10.1.1.1]:2222"], a).status).toBe("match");
    expect(lookupHostKey([file], ["10.1.1.1"], a).status).toBe("unknown");
  });

  it("wildcards, negation and @revoked", () => {
    expect(hostMatches("*.wild.example,!bad.wild.example", ["x.wild.example"])).toBe(true);
    expect(hostMatches("*.wild.example,!bad.wild.example", ["bad.wild.example"])).toBe(false);
    expect(lookupHostKey([file], ["revoked.example"], b).status).toBe("revoked");
  });

  it("records new hosts, hashed when asked, in a 0600 file", () => {
    const out = join(dir, "sub", "known_hosts");
    recordHostKey(out, "[127.0.0.1]:2200", a, false);
    recordHostKey(out, "[127.0.0.1]:2201", b, true);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, "utf8")).toContain(
      `[127.0.0.1]:2200 ssh-ed25519 ${a.toString("base64")}`,
    );
    expect(lookupHostKey([out], ["[127.0.0.1]:2201"], b).status).toBe("match");
    expect(readFileSync(out, "utf8")).not.toContain("2201");
  });

  it("fingerprints like ssh-keygen -l", () => {
    expect(fingerprint(a)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
