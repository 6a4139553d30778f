// Local forwards: a port here reaches host:port as seen from the pool; closes cleanly.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SshConnections } from "../../src/ssh/connections.js";
import { TunnelManager } from "../../src/tunnels/manager.js";
import { entryFor } from "../ssh/helpers.js";
import { stopAllAfterAll } from "../testbed/hooks.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import { echoServer, isListening, listenersOf, roundTrip, type Echo } from "./helpers.js";

stopAllAfterAll();

describe("local forward", () => {
  let sshd: Sshd;
  let pool: SshConnections;
  let tunnels: TunnelManager;
  let service: Echo; // stands in for a JupyterLab on the head node
  beforeAll(async () => {
    sshd = await startSshd();
    pool = new SshConnections({
      configPath: writeSshConfig(sshd.dir, [entryFor("pool", sshd)], "client_config"),
    });
    tunnels = new TunnelManager({ hosts: pool });
    service = await echoServer("127.0.0.3");
  }, 30000);
  afterAll(async () => {
    await tunnels?.closeAll();
    await pool?.close();
    await service?.close();
    await sshd?.stop();
  }, 30000);

  it("carries connections here to remote_host:remote_port from the pool", {
    timeout: 30000,
  }, async () => {
    const t = await tunnels.open({
      target: "pool",
      kind: "local",
      remote_host: "127.0.0.3",
      remote_port: service.port,
      owner: "t",
    });
    expect(t).toMatchObject({
      state: "open",
      reach: "local",
      dial_host: "127.0.0.1",
      dial_port: t.local_port,
      last_check: { ok: true },
    });
    const results = await Promise.all(
      [1, 2, 3].map(() => roundTrip("127.0.0.1", t.local_port, 300 * 1024)),
    );
    for (const { sent, got } of results) expect(got.equals(sent)).toBe(true);
    expect(tunnels.list()[0]!.total_connections).toBe(3);
    await tunnels.close(t.id);
    expect(isListening(t.local_port)).toBe(false);
  });

  it("a destination the pool cannot reach fails the open and leaves nothing listening", {
    timeout: 30000,
  }, async () => {
    const gone = await echoServer();
    const port = gone.port;
    await gone.close();
    const before = listenersOf([process.pid]);
    const err = await tunnels
      .open({ target: "pool", kind: "local", remote_port: port, owner: "t" })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "TUNNEL_FAILED",
      message: expect.stringContaining(`cannot reach 127.0.0.1:${port}`),
    });
    expect(listenersOf([process.pid])).toEqual(before);
    expect(tunnels.list()).toEqual([]);
    expect(pool.list()).toEqual([]);
  });

  it("a local port in use is a clear error", { timeout: 30000 }, async () => {
    const err = await tunnels
      .open({
        target: "pool",
        kind: "local",
        local_port: service.port,
        local_host: "127.0.0.3",
        remote_port: service.port,
        owner: "t",
      })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: "TUNNEL_FAILED",
      message: expect.stringContaining("the port is in use"),
    });
  });
});
