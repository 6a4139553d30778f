// staging.* through a real daemon and RPC client (progress, events, records, log), and the
// `parsl-sidecar stage` CLI.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import type { SidecarEvent } from "../../src/events.js";
import { SSH_CONFIG_ENV } from "../../src/ssh/config.js";
import { daemonWithPoolPerBlock } from "../ssh/helpers.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { makeTempDir } from "../testbed/registry.js";

stopAllAfterAll();

describe("staging RPC methods and CLI", () => {
  const bed = daemonWithPoolPerBlock("staging-rpc", () => ({
    sshd: { extraConfig: [`SetEnv HOME=${makeTempDir("staging-home")}`] },
  }));
  let dir: string;
  beforeAll(() => {
    dir = bed.dir;
    mkdirSync(join(dir, "src", "sub"), { recursive: true });
    for (let i = 0; i < 30; i++)
      writeFileSync(join(dir, "src", "sub", `f${i}`), `data ${i}\n`.repeat(1000));
  });

  it("staging.transfer copies to the pool with progress messages and events", {
    timeout: 60000,
  }, async () => {
    const events: SidecarEvent[] = [];
    const unsub = await bed.client.subscribe(["transfer"], (e) => events.push(e));
    const progress: Array<Record<string, unknown>> = [];
    const r = await bed.client.call<Record<string, unknown>>(
      "staging.transfer",
      {
        src: "pw://{cwd}/src",
        cwd: dir,
        dst: join(dir, "pool-copy"),
        host: "pool",
        type: "directory",
        item: "inputs",
      },
      { timeout: 60000, onProgress: (p) => progress.push(p) },
    );
    expect(r).toMatchObject({
      files: 30,
      skipped: 0,
      method: "tar-in",
      src: `file://${dir}/src`,
      dst: `ssh://pool${dir}/pool-copy`,
    });
    expect(readFileSync(join(dir, "pool-copy", "sub", "f7"), "utf8")).toBe("data 7\n".repeat(1000));
    expect(progress.at(-1)).toMatchObject({
      files: 30,
      total_files: 30,
      bytes: progress.at(-1)!.total_bytes,
    });
    await new Promise((res) => setTimeout(res, 200));
    await unsub();
    expect(events.some((e) => e.topic === "transfer.progress" && e.data.item === "inputs")).toBe(
      true,
    );
    expect(events.find((e) => e.topic === "transfer.done")?.data).toMatchObject({
      ok: true,
      item: "inputs",
      files: 30,
    });
    const list = await bed.client.call<{ transfers: Array<Record<string, unknown>> }>(
      "staging.list_transfers",
      {},
    );
    expect(list.transfers.find((t) => t.id === r.id)).toMatchObject({
      state: "done",
      item: "inputs",
      total_files: 30,
    });
    const status = await bed.client.call<{ services: Record<string, unknown> }>(
      "sidecar.status",
      {},
    );
    expect(status.services.staging).toMatchObject({ running: 0, done: 1 });
  });

  it("a failed transfer is an error reply with its code, and is listed as failed", {
    timeout: 30000,
  }, async () => {
    await expect(
      bed.client.call("staging.transfer", {
        src: `file://${dir}/nope`,
        dst: `${dir}/x`,
        host: "pool",
        item: "missing",
      }),
    ).rejects.toMatchObject({
      code: "STAGING_NOT_FOUND",
      message: expect.stringContaining("`missing`"),
    });
    await expect(
      bed.client.call("staging.transfer", { src: "ftp://h/x", dst: `${dir}/x` }),
    ).rejects.toMatchObject({ code: "STAGING_INVALID" });
    const failed = await bed.client.call<{ transfers: Array<Record<string, unknown>> }>(
      "staging.list_transfers",
      { state: "failed" },
    );
    expect(failed.transfers.some((t) => t.item === "missing")).toBe(true);
  });

  it("staging.log writes into the sidecar's log", { timeout: 30000 }, async () => {
    await bed.client.call("staging.log", {
      message: "app done",
      fields: { app: "simulate", bytes: 12 },
    });
    await new Promise((res) => setTimeout(res, 300));
    const log = readFileSync(bed.daemon.info.log_file!, "utf8");
    expect(log).toMatch(/"source":"workflow".*"app":"simulate".*"msg":"app done"/);
  });

  it("parsl-sidecar stage: TARGET:/path, --json, errors and exit codes", {
    timeout: 240_000,
  }, async () => {
    const cli = (...args: string[]) =>
      execa("node_modules/.bin/tsx", ["src/cli/entry.ts", ...args], {
        reject: false,
        timeout: 60_000,
        env: { [SSH_CONFIG_ENV]: bed.s.configPath },
      });
    const a = await cli("stage", join(dir, "src"), `pool:${dir}/cli-copy`, "--json");
    expect(a.exitCode).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ files: 30, dst: `ssh://pool${dir}/cli-copy` });
    const b = await cli("stage", `ssh://pool${dir}/cli-copy`, join(dir, "back"));
    expect(b.exitCode).toBe(0);
    expect(b.stdout).toMatch(/30 files/);
    expect(readFileSync(join(dir, "back", "sub", "f3"), "utf8")).toBe("data 3\n".repeat(1000));
    const c = await cli("stage", join(dir, "src"), `pool:${dir}/cli-copy`);
    expect(c.stdout).toMatch(/already up to date/);
    const bad = await cli("stage", "ftp://x/y", join(dir, "z"));
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/unknown scheme `ftp:\/\/`/);
    expect(bad.stderr).not.toMatch(/at .*\.ts/);
    const usage = await cli("stage", "a", "b", "--type", "blob");
    expect(usage.exitCode).toBe(2);
  });
});
