// tunnels.* over RPC through a real daemon, the CLI, bad params, and shutdown closing everything.
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { daemonWithPoolPerBlock, eventually, sshSetup } from "../ssh/helpers.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { makeTempDir } from "../testbed/registry.js";
import { echoServer, isListening, listenersOf, roundTrip, type Echo } from "./helpers.js";

stopAllAfterAll();

const cli = (...args: string[]) =>
  execa("node_modules/.bin/tsx", ["src/cli/entry.ts", ...args], { reject: false, timeout: 90_000 });

describe("tunnels RPC and CLI", () => {
  const bed = daemonWithPoolPerBlock("tun-rpc");
  let echo: Echo;
  beforeAll(async () => {
    echo = await echoServer();
  }, 30000);
  afterAll(async () => {
    await echo?.close();
  }, 30000);

  it("open, list, check, close over RPC; the caller owns it by default", {
    timeout: 60000,
  }, async () => {
    const t = await bed.client.call<
      Record<string, unknown> & { id: string; dial_port: number; owner: string }
    >("tunnels.open", { target: "pool", kind: "reverse", local_port: echo.port, bind: "loopback" });
    expect(t.owner).toMatch(/^client:[0-9a-f]+$/);
    expect((await roundTrip("127.0.0.1", t.dial_port)).got.length).toBe(64 * 1024);
    const list = await bed.client.call<Array<Record<string, unknown>>>("tunnels.list", {});
    expect(list).toHaveLength(1);
    // the closed connection's end travels through sshd: wait for it
    expect(
      await eventually(
        async () =>
          (await bed.client.call<Array<{ connections: number }>>("tunnels.list", {}))[0]!
            .connections === 0,
      ),
    ).toBe(true);
    expect(list[0]).toMatchObject({ id: t.id, state: "open", total_connections: 1 });
    expect(await bed.client.call("tunnels.check", { id: t.id })).toMatchObject({ ok: true });
    expect(await bed.client.call("tunnels.close", { id: t.id })).toMatchObject({ state: "closed" });
    expect(isListening(t.dial_port)).toBe(false);
    await expect(bed.client.call("tunnels.close", { id: t.id })).rejects.toMatchObject({
      code: "TUNNEL_NOT_FOUND",
    });
  });

  it("bad input: a clear error and nothing left listening on either side", {
    timeout: 60000,
  }, async () => {
    const mine = () => listenersOf([process.pid, bed.s.sshd.pid, ...[]]);
    const before = mine();
    await expect(
      bed.client.call("tunnels.open", { target: "pool", kind: "reverse", remote_port: 70000 }),
    ).rejects.toMatchObject({
      code: "INVALID_PARAMS",
      message: expect.stringContaining("remote_port"),
    });
    await expect(
      bed.client.call("tunnels.open", { target: "pool", kind: "reverse", local_port: 0 }),
    ).rejects.toMatchObject({
      code: "INVALID_PARAMS",
      message: expect.stringContaining("local_port"),
    });
    await expect(
      bed.client.call("tunnels.open", { target: "pool", kind: "local" }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("remote_port"),
    });
    await expect(
      bed.client.call("tunnels.open", {
        target: "pool",
        kind: "local",
        remote_port: 22,
        durable: true,
      }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("`durable` is for reverse tunnels"),
    });
    await expect(
      bed.client.call("tunnels.open", { target: "pool", kind: "reverse", durable: "yes" }),
    ).rejects.toMatchObject({
      code: "INVALID_PARAMS",
      message: expect.stringContaining("durable"),
    });
    await expect(
      bed.client.call("tunnels.open", { target: "bad@", kind: "reverse" }),
    ).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    await expect(
      bed.client.call("tunnels.open", { target: "unknown-alias-q", kind: "reverse" }),
    ).rejects.toMatchObject({ code: "SSH_CONFIG" });
    await expect(
      bed.client.call("tunnels.open", { target: "local", kind: "reverse" }),
    ).rejects.toMatchObject({
      code: "INVALID_ARGUMENT",
      message: expect.stringContaining("ssh target"),
    });
    expect(await bed.client.call("tunnels.list", {})).toEqual([]);
    expect(mine()).toEqual(before);
  });

  it("CLI: tunnels open / list / close", { timeout: 120000 }, async () => {
    const o = await cli(
      "tunnels",
      "open",
      "pool",
      "--local-port",
      String(echo.port),
      "--bind",
      "loopback",
      "--owner",
      "job:7",
      "--json",
      "--connection",
      bed.daemon.connectionFile,
    );
    expect(o.exitCode).toBe(0);
    const t = JSON.parse(o.stdout) as { id: string; dial_port: number; owner: string };
    expect(t.owner).toBe("job:7");
    const l = await cli("tunnels", "list", "--connection", bed.daemon.connectionFile);
    expect(l.stdout).toMatch(/^ID\s+KIND\s+TARGET\s+STATE.*RECONNECTS\s+CUT\s+OWNER/);
    expect(l.stdout).toContain(t.id);
    expect(l.stdout).toContain(`127.0.0.1:${t.dial_port}`);
    const bad = await cli(
      "tunnels",
      "open",
      "pool",
      "--remote-port",
      "abc",
      "--connection",
      bed.daemon.connectionFile,
    );
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("--remote-port");
    const c = await cli("tunnels", "close", t.id, "--connection", bed.daemon.connectionFile);
    expect(c.stdout).toContain(`closed ${t.id}`);
    const missing = await cli("tunnels", "close", t.id, "--connection", bed.daemon.connectionFile);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain(`No tunnel \`${t.id}\``);
  });

  it("a pid owner's tunnels close when that process exits", { timeout: 60000 }, async () => {
    const child = execa("sleep", ["30"]);
    const t = await bed.client.call<{ id: string; dial_port: number }>("tunnels.open", {
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
      owner: `pid:${child.pid}`,
    });
    child.kill("SIGKILL");
    await child.catch(() => undefined);
    const deadline = Date.now() + 15000;
    while (
      Date.now() < deadline &&
      (await bed.client.call<unknown[]>("tunnels.list", {})).length > 0
    )
      await new Promise((r) => setTimeout(r, 200));
    expect(await bed.client.call("tunnels.list", {})).toEqual([]);
    // the pool's listener goes with the forward's cancel, which may land just after
    expect(await eventually(() => !isListening(t.dial_port), 10000)).toBe(true);
  });

  it("daemon shutdown closes every tunnel on both sides", { timeout: 60000 }, async () => {
    const rev = await bed.client.call<{
      dial_port: number;
      remote_port: number;
      relay: { pgid: number } | null;
    }>("tunnels.open", {
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "cluster",
      remote_host: "127.0.0.2",
    });
    const loc = await bed.client.call<{ local_port: number }>("tunnels.open", {
      target: "pool",
      kind: "local",
      remote_port: echo.port,
    });
    expect(rev.relay).not.toBeNull();
    bed.client.close();
    await bed.daemon.close();
    expect(isListening(rev.dial_port)).toBe(false);
    expect(isListening(rev.remote_port)).toBe(false);
    expect(isListening(loc.local_port)).toBe(false);
    const ps = await execa("ps", ["-o", "pid=", "-g", String(rev.relay!.pgid)], { reject: false });
    expect(ps.stdout.trim()).toBe("");
  });
});

describe("the tunnels module for other modules", () => {
  it("manager: a labelled worker tunnel with a relay, closed by its owner", {
    timeout: 60000,
  }, async () => {
    const { tunnelsModule } = await import("../../src/tunnels/module.js");
    const { EventBus } = await import("../../src/events.js");
    const { createLogger } = await import("../../src/util/logger.js");
    const s = await sshSetup();
    const echo = await echoServer();
    const dir = makeTempDir("tun-worker");
    const mod = tunnelsModule(
      {
        log: createLogger({ stderrLevel: "silent" }),
        events: new EventBus(),
        runtimeDir: dir,
        stateDir: dir,
        connectionFile: join(dir, "x.json"),
        requestShutdown: () => undefined,
        call: async () => undefined,
        hasMethod: () => false,
      },
      s.pool,
    );
    try {
      const t = await mod.manager.open({
        target: "pool",
        kind: "reverse",
        local_port: echo.port,
        bind: "cluster",
        owner: "job:w",
        label: "cpu",
      });
      expect(mod.manager.list()[0]).toMatchObject({
        id: t.id,
        label: "cpu",
        owner: "job:w",
        reach: "relay",
        state: "open",
      });
      // the relay listens on every address of the head node; this test stays on loopback
      expect((await roundTrip("127.0.0.1", t.dial_port)).got.length).toBe(64 * 1024);
      expect(mod.status?.()).toMatchObject({ tunnels: 1, open: 1 });
      expect(await mod.manager.closeOwner("job:w")).toBe(1);
      expect(mod.manager.list()).toEqual([]);
      expect(isListening(t.dial_port)).toBe(false);
    } finally {
      await mod.close?.();
      await s.pool.close();
      await echo.close();
      await s.sshd.stop();
    }
  });
});
