// Tunnels that survive: the connection killed mid-stream, sshd restarted, and a hung
// connection whose ports are still held on the pool (the tunnel ends what the dropped connection
// left there and keeps its ports).
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { createConnection, createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventBus, type SidecarEvent } from "../../src/events.js";
import { SshConnections } from "../../src/ssh/connections.js";
import { TunnelManager } from "../../src/tunnels/manager.js";
import type { TunnelRecord } from "../../src/tunnels/types.js";
import { entryFor, eventually } from "../ssh/helpers.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { alive } from "../testbed/procs.js";
import { childrenTree } from "../testbed/registry.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import {
  echoAll,
  echoServer,
  pattern,
  roundTrip,
  streamUntilBroken,
  type Echo,
} from "./helpers.js";

stopAllAfterAll();

/** Send each of `pids` a signal; those gone already are skipped. */
function signalAll(pids: number[], ...signals: NodeJS.Signals[]): void {
  for (const k of pids) {
    try {
      for (const s of signals) process.kill(k, s);
    } catch {
      // gone
    }
  }
}

/** Reconnect bound used in these tests: keepalive 1 s x 2, backoff 50..500 ms (docs/tunnels.md). */
const BOUND_MS = 15000;

describe("tunnels survive", () => {
  let sshd: Sshd;
  let pool: SshConnections;
  let tunnels: TunnelManager;
  let echo: Echo;
  const events: SidecarEvent[] = [];
  beforeAll(async () => {
    sshd = await startSshd();
    const configPath = writeSshConfig(
      sshd.dir,
      [entryFor("pool", sshd, { ServerAliveInterval: 1, ServerAliveCountMax: 2 })],
      "client_config",
    );
    const bus = new EventBus();
    bus.on(["tunnel"], (e) => events.push(e));
    pool = new SshConnections({
      configPath,
      events: bus,
      reconnect: { initialMs: 50, maxMs: 500 },
    });
    tunnels = new TunnelManager({ hosts: pool, events: bus });
    echo = await echoServer();
  }, 30000);
  afterAll(async () => {
    await tunnels?.closeAll();
    await pool?.close();
    await echo?.close();
    await sshd?.stop();
  }, 30000);

  const rec = (id: string): TunnelRecord => tunnels.list().find((t) => t.id === id)!;
  /** a tunnel to the echo behind a relay: cluster-side, on 127.0.0.2 */
  const openRelayed = (owner: string) =>
    tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "cluster",
      remote_host: "127.0.0.2",
      owner,
    });
  const reopened = (id: string, n: number) =>
    eventually(() => rec(id).reconnects >= n && rec(id).state === "open", BOUND_MS);

  it("killConnections mid-stream: the stream breaks, the tunnel comes back on the same ports", {
    timeout: 60000,
  }, async () => {
    const loop = await tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
      owner: "t",
    });
    const relay = await openRelayed("t");
    expect(relay.reach).toBe("relay");
    const stream = streamUntilBroken(loop.dial_host, loop.dial_port);
    // and an idle connection through the relay: connected, nothing sent
    const idle = createConnection({ host: "127.0.0.2", port: relay.dial_port });
    idle.on("error", () => undefined);
    expect(
      await eventually(
        () => stream.echoed() > 1 << 20 && rec(relay.id).connections === 1,
        10000,
        10,
      ),
    ).toBe(true);
    await sshd.killConnections();
    expect(await stream.broken).toBeGreaterThan(1 << 20);
    idle.destroy();
    expect(await reopened(loop.id, 1)).toBe(true);
    expect(await reopened(relay.id, 1)).toBe(true);
    expect(rec(loop.id)).toMatchObject({
      remote_port: loop.remote_port,
      dial_port: loop.dial_port,
      last_check: { ok: true },
    });
    expect(rec(relay.id)).toMatchObject({ dial_port: relay.dial_port, last_check: { ok: true } });
    expect((await roundTrip(loop.dial_host, loop.dial_port)).got.length).toBe(64 * 1024);
    expect((await roundTrip("127.0.0.2", relay.dial_port)).got.length).toBe(64 * 1024);
    const states = events.filter((e) => e.data.id === loop.id).map((e) => e.data.state);
    expect(states).toEqual(expect.arrayContaining(["open", "reconnecting"]));
    // the drop is reported with what it cut: the streaming connection had data in flight, the
    // idle one had none (unknown on a direct forward, whose bytes the sidecar never sees)
    const loopInFlight = loop.direct ? 0 : 1;
    expect(rec(loop.id)).toMatchObject({ cut_connections: 1, cut_in_flight: loopInFlight });
    expect(rec(relay.id)).toMatchObject({ cut_connections: 1, cut_in_flight: 0 });
    const cuts = events
      .filter((e) => e.topic === "tunnel.cut")
      .map((e) => [e.data.id, e.data.cut, e.data.in_flight]);
    expect(cuts).toEqual(
      expect.arrayContaining([
        [loop.id, 1, loopInFlight],
        [relay.id, 1, 0],
      ]),
    );
    await tunnels.closeAll();
  });

  it("a relay dials sshd's own listener: a stranger on 127.0.0.1 at its old port is never reached", {
    timeout: 60000,
  }, async () => {
    const t = await openRelayed("stranger");
    expect(t.reach).toBe("relay");
    // while the pool refuses connections, another process takes 127.0.0.1 at sshd's old port
    // (::1 at it stays free: asked for "127.0.0.2", sshd would bind ::1 alone and succeed)
    await sshd.pause();
    let reached = 0;
    const stranger: Server = createServer((c) => {
      reached++;
      c.end("SSH-2.0-stranger\n");
    });
    const bound = await eventually(
      () =>
        new Promise<boolean>((resolve) => {
          stranger.once("error", () => resolve(false));
          stranger.listen(t.remote_port, "127.0.0.1", () => resolve(true));
        }),
      10000,
    );
    expect(bound).toBe(true);
    try {
      await sshd.resume();
      expect(await reopened(t.id, 1)).toBe(true);
      expect(rec(t.id).remote_port).not.toBe(t.remote_port);
      expect(rec(t.id).last_check).toMatchObject({ ok: true });
      expect((await roundTrip("127.0.0.2", rec(t.id).dial_port)).got.length).toBe(64 * 1024);
      expect(reached).toBe(0);
    } finally {
      stranger.close();
      await tunnels.close(t.id);
    }
  });

  it("sshd restarted: the tunnel comes back", { timeout: 60000 }, async () => {
    const t = await tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
      owner: "t",
    });
    await sshd.restart();
    expect(await reopened(t.id, 1)).toBe(true);
    expect((await roundTrip(t.dial_host, rec(t.id).dial_port)).got.length).toBe(64 * 1024);
    await tunnels.closeAll();
  });

  it("a hung connection still holds the ports on the pool: the tunnel ends what it left there and keeps its ports", {
    timeout: 60000,
  }, async () => {
    const loop = await tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
      owner: "t",
    });
    const t = await openRelayed("t");
    // the session processes (sshd's per-connection child and the relay under it) stop answering
    // but stay alive, holding the listeners: what a dropped network looks like from the pool
    const kids = childrenTree(sshd.pid);
    signalAll(kids, "SIGSTOP");
    try {
      expect(await reopened(t.id, 1)).toBe(true);
      expect(await reopened(loop.id, 1)).toBe(true);
      for (const [before, now] of [
        [t, rec(t.id)],
        [loop, rec(loop.id)],
      ] as const) {
        expect(now).toMatchObject({ dial_port: before.dial_port, last_check: { ok: true } });
        expect(now.port_changes).toEqual([]);
      }
      expect(rec(loop.id).remote_port).toBe(loop.remote_port);
      expect((await roundTrip("127.0.0.2", t.dial_port)).got.length).toBe(64 * 1024);
      expect((await roundTrip(loop.dial_host, loop.dial_port)).got.length).toBe(64 * 1024);
      // the stopped processes were ended by the tunnel, not by this test
      expect(kids.filter(alive)).toEqual([]);
    } finally {
      signalAll(kids, "SIGKILL", "SIGCONT");
    }
    await tunnels.closeAll();
  });

  describe("durable tunnels", () => {
    let durable: TunnelManager;
    beforeAll(() => {
      durable = new TunnelManager({ hosts: pool, durable: { resumeS: 60, pingS: 0.5 } });
    });
    afterAll(async () => {
      await durable?.closeAll();
    }, 30000);
    const drec = (id: string): TunnelRecord => durable.list().find((t) => t.id === id)!;
    /** a durable tunnel to the echo: on the pool's loopback, or cluster-side (127.0.0.2) */
    const openDurable = (bind: "loopback" | "cluster") =>
      durable.open({
        target: "pool",
        kind: "reverse",
        local_port: echo.port,
        bind,
        ...(bind === "cluster" ? { remote_host: "127.0.0.2" } : {}),
        durable: true,
        owner: "t",
      });
    const relayDir = (t: TunnelRecord): string => {
      const id = readFileSync(`/proc/${t.relay!.pgid}/cmdline`, "utf8")
        .split("\0")
        .filter(Boolean)
        .at(-1)!;
      return join(homedir(), ".parsl-sidecar", "relays", id);
    };

    it("a drop mid-stream loses nothing: every byte arrives once, in order, through the same relay and ports", {
      timeout: 90000,
    }, async () => {
      const cluster = await openDurable("cluster");
      const loop = await openDurable("loopback");
      expect(cluster).toMatchObject({ durable: true, reach: "relay", dial_host: "127.0.0.2" });
      expect(loop).toMatchObject({ durable: true, reach: "relay", dial_host: "127.0.0.1" });
      const data = pattern(16 << 20);
      let dropped = false;
      const a = echoAll("127.0.0.2", cluster.dial_port, data, (n) => {
        if (!dropped && n >= 4 << 20) {
          dropped = true;
          // the sshd processes die; what they started (the relays) lives on, as on a real pool
          void sshd.dropConnections();
        }
      });
      const b = echoAll("127.0.0.1", loop.dial_port, data);
      const [backA, backB] = await Promise.all([a.done, b.done]);
      expect(dropped).toBe(true);
      expect(backA.equals(data)).toBe(true);
      expect(backB.equals(data)).toBe(true);
      for (const [before, id] of [
        [cluster, cluster.id],
        [loop, loop.id],
      ] as const) {
        expect(
          await eventually(() => drec(id).state === "open" && drec(id).reconnects >= 1, BOUND_MS),
        ).toBe(true);
        expect(drec(id)).toMatchObject({
          dial_port: before.dial_port,
          cut_in_flight: 0,
          relay: { pgid: before.relay!.pgid },
          last_check: { ok: true },
        });
      }
      // at least the streaming connection resumed (the other may have finished before the drop)
      expect(drec(cluster.id).resumed_connections).toBeGreaterThanOrEqual(1);
      const dirs = [relayDir(drec(cluster.id)), relayDir(drec(loop.id))];
      const pgids = [cluster.relay!.pgid!, loop.relay!.pgid!];
      await durable.closeAll();
      // closed: the relays are gone from the pool with their state
      expect(await eventually(() => !pgids.some(alive), 5000)).toBe(true);
      expect(dirs.filter((d) => existsSync(d))).toEqual([]);
    });

    it("an echo at full speed both ways does not deadlock (acknowledgements never wait behind data)", {
      timeout: 90000,
    }, async () => {
      const t = await openDurable("loopback");
      const data = pattern(64 << 20);
      const back = await echoAll("127.0.0.1", t.dial_port, data).done;
      expect(back.equals(data)).toBe(true);
      await durable.closeAll();
    });

    it("a hung connection (the session frozen on the pool): the relay finds the link dead by its pings and resumes on the next", {
      timeout: 90000,
    }, async () => {
      const t = await openDurable("cluster");
      const data = pattern(8 << 20);
      const sessions: number[] = [];
      const run = echoAll("127.0.0.2", t.dial_port, data, (n) => {
        if (sessions.length === 0 && n >= 2 << 20) {
          // only sshd's own processes stop; the relay runs on
          sessions.push(
            ...childrenTree(sshd.pid).filter((k) =>
              readFileSync(`/proc/${k}/comm`, "utf8").startsWith("sshd"),
            ),
          );
          for (const k of sessions) process.kill(k, "SIGSTOP");
        }
      });
      try {
        const back = await run.done;
        expect(back.equals(data)).toBe(true);
        expect(
          await eventually(
            () => drec(t.id).state === "open" && drec(t.id).reconnects >= 1,
            BOUND_MS,
          ),
        ).toBe(true);
        expect(drec(t.id)).toMatchObject({
          dial_port: t.dial_port,
          cut_in_flight: 0,
          relay: { pgid: t.relay!.pgid },
        });
        expect(drec(t.id).resumed_connections).toBeGreaterThanOrEqual(1);
      } finally {
        signalAll(sessions, "SIGKILL", "SIGCONT"); // most were ended by the tunnel
      }
      await durable.closeAll();
    });

    it("a relay slow to come back after a drop (stopped on the pool past the usual wait) is waited for, not replaced: its connection resumes", {
      timeout: 90000,
    }, async () => {
      const t = await openDurable("loopback");
      const pgid = t.relay!.pgid!;
      // a connection through the relay, with an echo before the drop
      const sock = createConnection({ host: "127.0.0.1", port: t.dial_port });
      let got = "";
      sock.on("data", (b: Buffer) => (got += b.toString()));
      sock.write("before\n");
      expect(await eventually(() => got === "before\n", 10000)).toBe(true);
      process.kill(-pgid, "SIGSTOP");
      try {
        await sshd.dropConnections();
        // the reconnect's usual wait for the relay is 3 x pingS + 4 = 5.5 s; stay stopped past it
        await new Promise((r) => setTimeout(r, 8000));
      } finally {
        process.kill(-pgid, "SIGCONT");
      }
      expect(
        await eventually(() => drec(t.id).state === "open" && drec(t.id).reconnects >= 1, BOUND_MS),
      ).toBe(true);
      expect(drec(t.id)).toMatchObject({
        relay: { pgid },
        cut_in_flight: 0,
        dial_port: t.dial_port,
      });
      sock.write("after\n");
      expect(await eventually(() => got === "before\nafter\n", 20000)).toBe(true);
      sock.destroy();
      await durable.closeAll();
    });

    it("a relay that dies while the link is up is replaced on the same port", {
      timeout: 60000,
    }, async () => {
      const t = await openDurable("cluster");
      process.kill(-t.relay!.pgid!, "SIGKILL");
      const replaced = await eventually(
        () =>
          drec(t.id).relay?.pgid !== t.relay!.pgid &&
          drec(t.id).last_check?.ok === true &&
          drec(t.id).last_check!.at > t.last_check!.at,
        20000,
      );
      expect(replaced).toBe(true);
      expect(drec(t.id)).toMatchObject({ state: "open", dial_port: t.dial_port });
      const r = await roundTrip("127.0.0.2", t.dial_port);
      expect(r.got.equals(r.sent)).toBe(true);
      await durable.closeAll();
    });
  });
});
