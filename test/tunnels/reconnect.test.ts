// Tunnels that survive: the connection killed mid-stream, sshd restarted, and a hung
// connection whose ports are still held on the pool (the tunnel ends what the dropped connection
// left there and keeps its ports).
import { readFileSync } from "node:fs";
import { createConnection } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventBus, type SidecarEvent } from "../../src/events.js";
import { SshPool } from "../../src/ssh/pool.js";
import { TunnelManager } from "../../src/tunnels/manager.js";
import type { TunnelRecord } from "../../src/tunnels/types.js";
import { entryFor, eventually } from "../ssh/helpers.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { childrenTree } from "../testbed/registry.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import { echoServer, roundTrip, streamUntilBroken, type Echo } from "./helpers.js";

stopAllAfterAll();

/** Reconnect bound used in these tests: keepalive 1 s x 2, backoff 50..500 ms (docs/tunnels.md). */
const BOUND_MS = 15000;

describe("tunnels survive", () => {
  let sshd: Sshd;
  let pool: SshPool;
  let tunnels: TunnelManager;
  let echo: Echo;
  const events: SidecarEvent[] = [];
  beforeAll(async () => {
    sshd = await startSshd();
    const configPath = writeSshConfig(sshd.dir, [entryFor("pool", sshd, { ServerAliveInterval: 1, ServerAliveCountMax: 2 })], "client_config");
    const bus = new EventBus();
    bus.on(["tunnel"], (e) => events.push(e));
    pool = new SshPool({ configPath, events: bus, reconnect: { initialMs: 50, maxMs: 500 } });
    tunnels = new TunnelManager({ pool, events: bus });
    echo = await echoServer();
  }, 30000);
  afterAll(async () => {
    await tunnels?.closeAll();
    await pool?.close();
    await echo?.close();
    await sshd?.stop();
  }, 30000);

  const rec = (id: string): TunnelRecord => tunnels.list().find((t) => t.id === id)!;
  const reopened = (id: string, n: number) => eventually(() => rec(id).reconnects >= n && rec(id).state === "open", BOUND_MS);

  it("killConnections mid-stream: the stream breaks, the tunnel comes back on the same ports", { timeout: 60000 }, async () => {
    const loop = await tunnels.open({ target: "pool", kind: "reverse", local_port: echo.port, bind: "loopback", owner: "t" });
    const relay = await tunnels.open({ target: "pool", kind: "reverse", local_port: echo.port, bind: "cluster", remote_host: "127.0.0.2", owner: "t" });
    expect(relay.reach).toBe("relay");
    const stream = streamUntilBroken(loop.dial_host, loop.dial_port);
    // and an idle connection through the relay: connected, nothing sent
    const idle = createConnection({ host: "127.0.0.2", port: relay.dial_port });
    idle.on("error", () => undefined);
    expect(await eventually(() => stream.echoed() > 1 << 20 && rec(relay.id).connections === 1, 10000, 10)).toBe(true);
    await sshd.killConnections();
    expect(await stream.broken).toBeGreaterThan(1 << 20);
    idle.destroy();
    expect(await reopened(loop.id, 1)).toBe(true);
    expect(await reopened(relay.id, 1)).toBe(true);
    expect(rec(loop.id)).toMatchObject({ remote_port: loop.remote_port, dial_port: loop.dial_port, last_check: { ok: true } });
    expect(rec(relay.id)).toMatchObject({ dial_port: relay.dial_port, last_check: { ok: true } });
    expect((await roundTrip(loop.dial_host, loop.dial_port)).got.length).toBe(64 * 1024);
    expect((await roundTrip("127.0.0.2", relay.dial_port)).got.length).toBe(64 * 1024);
    const states = events.filter((e) => e.data.id === loop.id).map((e) => e.data.state);
    expect(states).toEqual(expect.arrayContaining(["open", "reconnecting"]));
    // the drop is reported with what it cut: the streaming connection had data in flight, the
    // idle one had none
    expect(rec(loop.id)).toMatchObject({ cut_connections: 1, cut_in_flight: 1 });
    expect(rec(relay.id)).toMatchObject({ cut_connections: 1, cut_in_flight: 0 });
    const cuts = events.filter((e) => e.topic === "tunnel.cut").map((e) => [e.data.id, e.data.cut, e.data.in_flight]);
    expect(cuts).toEqual(expect.arrayContaining([[loop.id, 1, 1], [relay.id, 1, 0]]));
    await tunnels.closeAll();
  });

  it("sshd restarted: the tunnel comes back", { timeout: 60000 }, async () => {
    const t = await tunnels.open({ target: "pool", kind: "reverse", local_port: echo.port, bind: "loopback", owner: "t" });
    await sshd.restart();
    expect(await reopened(t.id, 1)).toBe(true);
    expect((await roundTrip(t.dial_host, rec(t.id).dial_port)).got.length).toBe(64 * 1024);
    await tunnels.closeAll();
  });

  it("a hung connection still holds the ports on the pool: the tunnel ends what it left there and keeps its ports", { timeout: 60000 }, async () => {
    const loop = await tunnels.open({ target: "pool", kind: "reverse", local_port: echo.port, bind: "loopback", owner: "t" });
    const t = await tunnels.open({ target: "pool", kind: "reverse", local_port: echo.port, bind: "cluster", remote_host: "127.0.0.2", owner: "t" });
    // the session processes (sshd's per-connection child and the relay under it) stop answering
    // but stay alive, holding the listeners: what a dropped network looks like from the pool
    const kids = childrenTree(sshd.pid);
    for (const k of kids) {
      try {
        process.kill(k, "SIGSTOP");
      } catch {
        // gone
      }
    }
    try {
      expect(await reopened(t.id, 1)).toBe(true);
      expect(await reopened(loop.id, 1)).toBe(true);
      for (const [before, now] of [[t, rec(t.id)], [loop, rec(loop.id)]] as const) {
        expect(now).toMatchObject({ dial_port: before.dial_port, last_check: { ok: true } });
        expect(now.port_changes).toEqual([]);
      }
      expect(rec(loop.id).remote_port).toBe(loop.remote_port);
      expect((await roundTrip("127.0.0.2", t.dial_port)).got.length).toBe(64 * 1024);
      expect((await roundTrip(loop.dial_host, loop.dial_port)).got.length).toBe(64 * 1024);
      // the stopped processes were ended by the tunnel, not by this test
      expect(kids.filter((k) => { try { process.kill(k, 0); return readFileSync(`/proc/${k}/stat`, "utf8").split(") ")[1]![0] !== "Z"; } catch { return false; } })).toEqual([]);
    } finally {
      for (const k of kids) {
        try {
          process.kill(k, "SIGKILL");
          process.kill(k, "SIGCONT");
        } catch {
          // gone
        }
      }
    }
    await tunnels.closeAll();
  });
});
