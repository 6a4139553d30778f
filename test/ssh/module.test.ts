// ssh.exec / ssh.check / ssh.list through a real daemon and RPC client, and the `ssh` CLI.
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { daemonWithPoolPerBlock } from "./helpers.js";

stopAllAfterAll();

describe("ssh RPC methods and CLI", () => {
  const bed = daemonWithPoolPerBlock("ssh-rpc");

  it("ssh.exec returns the same shape on success and failure", { timeout: 30000 }, async () => {
    const r = await bed.client.call("ssh.exec", {
      target: "pool",
      command: "echo $X; echo e >&2; exit 5",
      env: { X: "y" },
    });
    expect(r).toMatchObject({
      exit_code: 5,
      signal: null,
      stdout: "y\n",
      stderr: "e\n",
      timed_out: false,
    });
    const progress: Array<Record<string, unknown>> = [];
    const st = await bed.client.call(
      "ssh.exec",
      { target: "pool", command: "echo one; echo two >&2", stream: true },
      { onProgress: (p) => progress.push(p) },
    );
    expect(st).toMatchObject({ exit_code: 0, stdout: "one\n" });
    expect(progress).toContainEqual({ stream: "stdout", data: "one\n" });
    expect(progress).toContainEqual({ stream: "stderr", data: "two\n" });
  });

  it("ssh.check and ssh.list describe the connection", { timeout: 30000 }, async () => {
    const c = await bed.client.call<Record<string, unknown>>("ssh.check", { target: "pool" });
    expect(c).toMatchObject({
      ok: true,
      host: "127.0.0.1",
      port: bed.s.sshd.port,
      user: bed.s.sshd.user,
    });
    expect(String(c.server_version)).toMatch(/OpenSSH/);
    expect(String(c.fingerprint)).toMatch(/^SHA256:/);
    const list = await bed.client.call<Array<Record<string, unknown>>>("ssh.list", {});
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      target: "pool",
      // the transport this project runs over (vitest.config.ts)
      transport: process.env.PARSL_SIDECAR_SSH_TRANSPORT,
      state: "ready",
      owners: ["rpc"],
    });
    const status = await bed.client.call<{ services: Record<string, unknown> }>(
      "sidecar.status",
      {},
    );
    expect(status.services.ssh).toMatchObject({ connections: 1, ready: 1 });
  });

  it("bad params are named", { timeout: 30000 }, async () => {
    await expect(
      bed.client.call("ssh.exec", { target: "pool", command: "true", timeout_ms: -1 }),
    ).rejects.toMatchObject({ code: "INVALID_PARAMS" });
    await expect(
      bed.client.call("ssh.exec", { target: "bad target", command: "true" }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("whitespace"),
    });
    await expect(
      bed.client.call("ssh.exec", { target: "no-such-alias-xyz", command: "true" }),
    ).rejects.toMatchObject({
      code: "SSH_CONFIG",
      message: expect.stringContaining("no-such-alias-xyz"),
    });
  });

  it("CLI: ssh exec passes output and the exit code through", { timeout: 60000 }, async () => {
    const cli = (...args: string[]) =>
      execa("node_modules/.bin/tsx", ["src/cli/entry.ts", ...args], {
        reject: false,
        timeout: 60_000,
      });
    const r = await cli(
      "ssh",
      "exec",
      "--connection",
      bed.daemon.connectionFile,
      "pool",
      "--",
      "echo hi; echo oops >&2; exit 7",
    );
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toBe("hi");
    expect(r.stderr).toBe("oops");
    const j = await cli(
      "ssh",
      "exec",
      "--json",
      "--connection",
      bed.daemon.connectionFile,
      "pool",
      "--",
      "echo",
      "a",
    );
    expect(JSON.parse(j.stdout)).toMatchObject({ exit_code: 0, stdout: "a\n" });
    const l = await cli("ssh", "list", "--connection", bed.daemon.connectionFile);
    expect(l.stdout).toMatch(/^TARGET\s+STATE/);
    expect(l.stdout).toContain("pool");
  });
});
