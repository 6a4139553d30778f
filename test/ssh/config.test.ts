// ~/.ssh/config resolution: the keys honoured, Include, ProxyJump chains, and config errors.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig, resolveChain, resolveTarget } from "../../src/ssh/config.js";
import { makeTempDir, removeTempDir } from "../testbed/registry.js";

const dir = makeTempDir("ssh-config");
afterAll(() => removeTempDir(dir));

function cfg(text: string): ReturnType<typeof loadConfig> {
  const p = join(dir, `config-${Math.random().toString(36).slice(2)}`);
  writeFileSync(p, text);
  return loadConfig(p);
}

describe("resolveTarget", () => {
  const loaded = cfg(`
Host hpc
  HostName login.%h.example.org
  User alice
  Port 2222
  IdentityFile ~/.ssh/hpc_key
  IdentityFile /keys/%r_%h
  ServerAliveInterval 5
  ServerAliveCountMax 2
  StrictHostKeyChecking accept-new
  UserKnownHostsFile /tmp/kh1 /tmp/kh2
  ConnectTimeout 7

Host jumped
  HostName 10.0.0.5
  ProxyJump bastion,alice@inner:2022

Host bastion
  HostName 192.0.2.1
  User jumper

Host strict
  StrictHostKeyChecking yes
Host lax
  StrictHostKeyChecking no

Host *
  User fallback
`);

  it("applies HostName, User, Port, IdentityFile, ServerAlive*, known hosts, ConnectTimeout", () => {
    const h = resolveTarget("hpc", loaded);
    expect(h).toMatchObject({
      hostName: "login.hpc.example.org",
      user: "alice",
      port: 2222,
      serverAliveInterval: 5,
      serverAliveCountMax: 2,
      strictHostKeyChecking: "accept-new",
      connectTimeout: 7,
      matchedSection: true,
    });
    expect(h.identityFiles[0]).toMatch(/\/\.ssh\/hpc_key$/);
    expect(h.identityFiles[1]).toBe("/keys/alice_login.hpc.example.org");
    expect(h.identityFilesExplicit).toBe(true);
    expect(h.userKnownHostsFiles).toEqual(["/tmp/kh1", "/tmp/kh2"]);
  });

  it("the target's own user and port win over the config", () => {
    expect(resolveTarget("bob@hpc:22", loaded)).toMatchObject({
      user: "bob",
      port: 22,
      hostName: "login.hpc.example.org",
    });
  });

  it("defaults: accept-new, Host * user, default identity files, not matched", () => {
    const h = resolveTarget("other.example.org", loaded);
    expect(h).toMatchObject({
      user: "fallback",
      port: 22,
      strictHostKeyChecking: "accept-new",
      strictHostKeyCheckingExplicit: false,
      matchedSection: false,
      identityFilesExplicit: false,
    });
    expect(resolveTarget("strict", loaded).strictHostKeyChecking).toBe("yes");
    expect(resolveTarget("lax", loaded).strictHostKeyChecking).toBe("no");
  });

  it("ProxyJump expands into hops, the first hop with its own config", () => {
    const chain = resolveChain("jumped", loaded);
    expect(chain.map((h) => `${h.user}@${h.hostName}:${h.port}`)).toEqual([
      "jumper@192.0.2.1:22",
      "alice@inner:2022",
      "fallback@10.0.0.5:22",
    ]);
  });

  it("a ProxyJump loop is an SSH_CONFIG error", () => {
    const l = cfg("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n");
    expect(() => resolveChain("a", l)).toThrow(/nests more than 8 hops/);
  });

  it("a bad Port is an SSH_CONFIG error naming the host and file", () => {
    const l = cfg("Host p\n  Port 99999\n");
    expect(() => resolveTarget("p", l)).toThrow(
      /`Port` for host `p` in .*config-.* to be an integer 1-65535, got `99999`/,
    );
  });

  it("Include pulls in other files", () => {
    mkdirSync(join(dir, "conf.d"), { recursive: true });
    writeFileSync(join(dir, "conf.d", "a.conf"), "Host inc\n  HostName included.example\n");
    const l = cfg(`Include ${join(dir, "conf.d", "*.conf")}\n`);
    expect(resolveTarget("inc", l).hostName).toBe("included.example");
  });

  it("an explicit config path that does not exist is an error", () => {
    expect(() => loadConfig(join(dir, "missing"))).toThrow(/does not exist/);
  });
});
