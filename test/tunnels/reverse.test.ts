// Reverse tunnels against a real sshd: loopback, relay (GatewayPorts no), gateway binds, the
// end-to-end check, a taken port, and closing leaves nothing listening on either side.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventBus, type SidecarEvent } from "../../src/events.js";
import { SshConnections } from "../../src/ssh/connections.js";
import { TunnelManager } from "../../src/tunnels/manager.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import { entryFor, eventually, transport } from "../ssh/helpers.js";
import { echoServer, isListening, roundTrip, type Echo } from "./helpers.js";

stopAllAfterAll();

interface Bed {
  sshd: Sshd;
  pool: SshConnections;
  tunnels: TunnelManager;
  events: SidecarEvent[];
}

async function bed(extraConfig: string[] = []): Promise<Bed> {
  const sshd = await startSshd({ extraConfig });
  const configPath = writeSshConfig(
    sshd.dir,
    [entryFor("pool", sshd, { ServerAliveInterval: 1, ServerAliveCountMax: 2 })],
    "client_config",
  );
  const bus = new EventBus();
  const events: SidecarEvent[] = [];
  bus.on(["tunnel"], (e) => events.push(e));
  const pool = new SshConnections({
    configPath,
    events: bus,
    reconnect: { initialMs: 50, maxMs: 500 },
  });
  return { sshd, pool, tunnels: new TunnelManager({ hosts: pool, events: bus }), events };
}

/** A reverse tunnel to `port` here, bound on the pool's loopback, owned by "test". */
function loopback(b: Bed, port: number): ReturnType<TunnelManager["open"]> {
  return b.tunnels.open({
    target: "pool",
    kind: "reverse",
    local_port: port,
    bind: "loopback",
    owner: "test",
  });
}

async function closeBed(b: Bed | undefined): Promise<void> {
  await b?.tunnels.closeAll();
  await b?.pool.close();
  await b?.sshd.stop();
}

describe("reverse tunnel, sshd with GatewayPorts no (the default)", () => {
  let b: Bed;
  let echo: Echo;
  beforeAll(async () => {
    b = await bed();
    echo = await echoServer();
  }, 30000);
  afterAll(async () => {
    await closeBed(b);
    await echo?.close();
  }, 30000);

  it("loopback: carries a round trip, counts bytes, and closes both ends", {
    timeout: 30000,
  }, async () => {
    const t = await loopback(b, echo.port);
    expect(t).toMatchObject({
      state: "open",
      reach: "loopback",
      dial_host: "127.0.0.1",
      local_port: echo.port,
      relay: null,
      last_check: { ok: true },
    });
    expect(t.dial_port).toBe(t.remote_port);
    // over our own OpenSSH master the master connects to the service itself (a direct forward)
    expect(t.direct).toBe(transport() === "openssh");
    // a direct forward's probe reaches the service (an empty connection); otherwise it does not
    const probe = t.direct ? 1 : 0;
    const accepted = echo.accepted;
    const { sent, got } = await roundTrip(t.dial_host, t.dial_port, 1 << 20);
    expect(got.equals(sent)).toBe(true);
    expect(echo.accepted).toBe(accepted + 1);
    const rec = b.tunnels.list().find((x) => x.id === t.id)!;
    // nothing is copied through the sidecar on a direct forward, so nothing is counted
    expect(rec.bytes_in).toBe(t.direct ? 0 : rec.bytes_in);
    expect(rec.bytes_in).toBeGreaterThanOrEqual(t.direct ? 0 : 1 << 20);
    expect(rec.bytes_out).toBeGreaterThanOrEqual(t.direct ? 0 : 1 << 20);
    // the check's probe is not counted as a connection either way
    expect(rec.total_connections).toBe(1);
    const check = await b.tunnels.check(t.id);
    expect(check.ok).toBe(true);
    expect(echo.accepted).toBe(accepted + 1 + probe);
    expect(b.tunnels.list().find((x) => x.id === t.id)!.total_connections).toBe(1);
    await b.tunnels.close(t.id);
    expect(isListening(t.remote_port)).toBe(false);
    expect(b.pool.list()).toEqual([]);
  });

  it("cluster: sshd bound loopback only, so a relay listens on the cluster-side address", {
    timeout: 30000,
  }, async () => {
    const t = await b.tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "cluster",
      remote_host: "127.0.0.2",
      owner: "test",
    });
    expect(t).toMatchObject({
      state: "open",
      reach: "relay",
      dial_host: "127.0.0.2",
      last_check: { ok: true },
    });
    expect(t.relay).toMatchObject({
      interpreter: expect.stringMatching(/python/),
      listen: `127.0.0.2:${t.dial_port}`,
    });
    expect(t.dial_port).not.toBe(t.remote_port);
    const { sent, got } = await roundTrip("127.0.0.2", t.dial_port, 256 * 1024);
    expect(got.equals(sent)).toBe(true);
    const lease = await b.pool.acquire("pool", "look");
    const pgid = t.relay!.pgid!;
    expect((await lease.exec(`ps -o pid= -g ${pgid} | wc -l`)).stdout.trim()).not.toBe("0");
    await b.tunnels.close(t.id);
    expect(
      await eventually(
        async () => (await lease.exec(`ps -o pid= -g ${pgid} | wc -l`)).stdout.trim() === "0",
      ),
    ).toBe(true);
    const ss = (await lease.exec("ss -Hltn")).stdout;
    expect(ss).not.toContain(`:${t.dial_port} `);
    expect(ss).not.toContain(`:${t.remote_port} `);
    lease.release();
  });

  it("a real connection that arrives during a check is held briefly, then carried untouched", {
    timeout: 30000,
  }, async () => {
    const t = await loopback(b, echo.port);
    const before = echo.accepted;
    const check = b.tunnels.check(t.id); // pending from now until the probe's exec returns
    const [rt, ck] = await Promise.all([roundTrip(t.dial_host, t.dial_port, 128 * 1024), check]);
    expect(rt.got.equals(rt.sent)).toBe(true);
    expect(ck.ok).toBe(true);
    // a direct forward's probe is an empty connection the service sees
    expect(echo.accepted).toBe(before + (t.direct ? 2 : 1));
    await b.tunnels.close(t.id);
  });

  it("a remote port that is taken moves to another, and the change is reported", {
    timeout: 30000,
  }, async () => {
    const blocker = await echoServer();
    try {
      const t = await b.tunnels.open({
        target: "pool",
        kind: "reverse",
        local_port: echo.port,
        bind: "loopback",
        remote_port: blocker.port,
        owner: "test",
      });
      expect(t.remote_port).not.toBe(blocker.port);
      expect(t.port_changes).toContainEqual(
        expect.objectContaining({ which: "remote_port", from: blocker.port, to: t.remote_port }),
      );
      expect((await roundTrip("127.0.0.1", t.dial_port)).got.length).toBe(64 * 1024);
      await b.tunnels.close(t.id);
    } finally {
      await blocker.close();
    }
  });

  it("a free remote port that was asked for is used", { timeout: 30000 }, async () => {
    const probe = await echoServer();
    const want = probe.port;
    await probe.close();
    const t = await b.tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
      remote_port: want,
      owner: "test",
    });
    expect(t.remote_port).toBe(want);
    expect(t.port_changes).toEqual([]);
    await b.tunnels.close(t.id);
  });

  it("a check tells a service that stopped here apart only on a direct forward", {
    timeout: 30000,
  }, async () => {
    const svc = await echoServer();
    const t = await loopback(b, svc.port);
    expect((await b.tunnels.check(t.id)).ok).toBe(true);
    await svc.close();
    const check = await b.tunnels.check(t.id);
    if (t.direct) {
      // the probe reaches the service through the master, which says why it could not
      expect(check).toMatchObject({ ok: false });
      expect(check.error).toMatch(/could not connect to the service here: Connection refused/);
    } else {
      // through the sidecar the probe is answered here and never reaches the service
      expect(check.ok).toBe(true);
    }
    await b.tunnels.close(t.id);
  });

  it("PARSL_SIDECAR_DIRECT_FORWARDS=0 carries every connection through the sidecar", {
    timeout: 30000,
  }, async () => {
    process.env.PARSL_SIDECAR_DIRECT_FORWARDS = "0";
    try {
      const t = await loopback(b, echo.port);
      expect(t.direct).toBe(false);
      const accepted = echo.accepted;
      expect((await roundTrip(t.dial_host, t.dial_port, 64 * 1024)).got.length).toBe(64 * 1024);
      expect(b.tunnels.list().find((x) => x.id === t.id)!.bytes_in).toBeGreaterThanOrEqual(
        64 * 1024,
      );
      expect((await b.tunnels.check(t.id)).ok).toBe(true);
      expect(echo.accepted).toBe(accepted + 1);
      await b.tunnels.close(t.id);
    } finally {
      delete process.env.PARSL_SIDECAR_DIRECT_FORWARDS;
    }
  });

  it("two tunnels to one service: the second, which the master would merge into the first, goes through the sidecar on a port of its own", {
    timeout: 30000,
  }, async () => {
    const open = () => loopback(b, echo.port);
    const [x, y] = [await open(), await open()];
    expect(x.remote_port).not.toBe(y.remote_port);
    expect(y.direct).toBe(false);
    await b.tunnels.close(x.id);
    expect(isListening(x.remote_port)).toBe(false);
    expect((await roundTrip(y.dial_host, y.dial_port, 1024)).got.length).toBe(1024);
    await b.tunnels.close(y.id);
  });

  it("closeOwner closes every tunnel of that owner", { timeout: 30000 }, async () => {
    const a = await b.tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
      owner: "job:42",
    });
    const c = await b.tunnels.open({
      target: "pool",
      kind: "reverse",
      local_port: echo.port,
      bind: "loopback",
      owner: "job:43",
    });
    expect(await b.tunnels.closeOwner("job:42")).toBe(1);
    expect(b.tunnels.list().map((t) => t.id)).toEqual([c.id]);
    expect(isListening(a.remote_port)).toBe(false);
    await b.tunnels.closeAll();
    expect(isListening(c.remote_port)).toBe(false);
  });
});

describe("reverse tunnel, sshd that allows non-loopback binds", () => {
  it("GatewayPorts clientspecified: sshd binds the cluster-side address itself (no relay)", {
    timeout: 60000,
  }, async () => {
    const b = await bed(["GatewayPorts clientspecified"]);
    const echo = await echoServer();
    try {
      const t = await b.tunnels.open({
        target: "pool",
        kind: "reverse",
        local_port: echo.port,
        remote_host: "127.0.0.2",
        owner: "test",
      });
      expect(t).toMatchObject({ reach: "gateway", relay: null, dial_host: "127.0.0.2" });
      expect(t.dial_port).toBe(t.remote_port);
      expect((await roundTrip("127.0.0.2", t.dial_port)).got.length).toBe(64 * 1024);
    } finally {
      await closeBed(b);
      await echo.close();
    }
  });

  it("GatewayPorts yes with the default bind: wildcard listener, every head address reported", {
    timeout: 60000,
  }, async () => {
    const b = await bed(["GatewayPorts yes"]);
    const echo = await echoServer();
    try {
      const t = await b.tunnels.open({
        target: "pool",
        kind: "reverse",
        local_port: echo.port,
        owner: "test",
      });
      expect(t.reach).toBe("gateway");
      expect(t.dial_hosts).toContain(t.dial_host);
      expect((await roundTrip("127.0.0.1", t.dial_port)).got.length).toBe(64 * 1024);
    } finally {
      await closeBed(b);
      await echo.close();
    }
  });
});
