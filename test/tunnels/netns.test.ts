// A head node and a compute node (network namespaces): a worker on the compute node reaches a
// service here through a reverse tunnel + relay on the head, with sshd's default GatewayPorts no.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventBus } from "../../src/events.js";
import { SshConnections } from "../../src/ssh/connections.js";
import { TunnelManager } from "../../src/tunnels/manager.js";
import { entryFor, eventually } from "../ssh/helpers.js";
import { stopAllAfterAll, warnSkip } from "../testbed/hooks.js";
import { leftoverProcesses } from "../testbed/leftovers.js";
import { canUseNamespaces, createTopology, type Topology } from "../testbed/netns.js";
import { writeSshConfig } from "../testbed/ssh-config.js";
import { startSshd, type Sshd } from "../testbed/sshd.js";
import { echoServer, type Echo } from "./helpers.js";

const support = await canUseNamespaces();
if (!support.ok) warnSkip("compute-node reachability tests (network namespaces)", support.reason);
stopAllAfterAll();

/** A worker on the compute node: connect, send, expect the echo. Prints OK or the error. */
const WORKER = fileURLToPath(new URL("../fixtures/echo-client.py", import.meta.url));

describe.skipIf(!support.ok)(
  `compute node through the head node${support.ok ? "" : ` (SKIPPED: ${support.reason})`}`,
  () => {
    let topo: Topology;
    let sshd: Sshd;
    let pool: SshConnections;
    let tunnels: TunnelManager;
    let echo: Echo;
    beforeAll(async () => {
      topo = await createTopology();
      sshd = await startSshd({ netns: topo.head.ns, host: topo.head.addr });
      pool = new SshConnections({
        configPath: writeSshConfig(
          sshd.dir,
          [entryFor("head", sshd, { ServerAliveInterval: 1, ServerAliveCountMax: 2 })],
          "client_config",
        ),
        events: new EventBus(),
        reconnect: { initialMs: 50, maxMs: 500 },
      });
      tunnels = new TunnelManager({ hosts: pool });
      echo = await echoServer(); // the interchange stand-in, on this machine's loopback
    }, 60000);
    afterAll(async () => {
      await tunnels?.closeAll();
      await pool?.close();
      await echo?.close();
      const dir = sshd?.dir;
      await sshd?.stop();
      await topo?.destroy();
      if (dir) expect(leftoverProcesses(dir)).toEqual([]);
    }, 60000);

    const worker = async (host: string, port: number): Promise<string> =>
      (
        await topo.exec(topo.compute.ns, ["python3", WORKER, host, String(port)], {
          timeoutMs: 30000,
        })
      ).stdout.trim();

    it("a loopback-only tunnel is not reachable from the compute node (the original bug)", {
      timeout: 60000,
    }, async () => {
      const t = await tunnels.open({
        target: "head",
        kind: "reverse",
        local_port: echo.port,
        bind: "loopback",
        owner: "t",
      });
      expect(await worker(topo.head.computeSideAddr, t.dial_port)).toMatch(/^ERROR/);
      await tunnels.close(t.id);
    });

    it("auto: a relay on the head node carries the compute node's connection here", {
      timeout: 60000,
    }, async () => {
      const t = await tunnels.open({
        target: "head",
        kind: "reverse",
        local_port: echo.port,
        owner: "t",
      });
      expect(t.reach).toBe("relay");
      expect(t.dial_hosts).toEqual(
        expect.arrayContaining([topo.head.addr, topo.head.computeSideAddr]),
      );
      expect(await worker(topo.head.computeSideAddr, t.dial_port)).toBe("OK");
      await tunnels.close(t.id);
    });

    it("cluster with the compute-side address: dial_host is that address; survives a reconnect; close removes the relay", {
      timeout: 90000,
    }, async () => {
      const t = await tunnels.open({
        target: "head",
        kind: "reverse",
        local_port: echo.port,
        bind: "cluster",
        remote_host: topo.head.computeSideAddr,
        owner: "t",
      });
      expect(t).toMatchObject({ reach: "relay", dial_host: topo.head.computeSideAddr });
      expect(await worker(t.dial_host, t.dial_port)).toBe("OK");
      await sshd.killConnections();
      expect(
        await eventually(
          () => tunnels.list()[0]!.reconnects === 1 && tunnels.list()[0]!.state === "open",
          15000,
        ),
      ).toBe(true);
      const now = tunnels.list()[0]!;
      expect(await worker(now.dial_host, now.dial_port)).toBe("OK");
      await tunnels.close(t.id);
      const ss = (await topo.exec(topo.head.ns, ["ss", "-Hltn"])).stdout;
      expect(ss).not.toContain(`:${now.dial_port} `);
      expect(ss).not.toContain(`:${now.remote_port} `);
      expect(await worker(now.dial_host, now.dial_port)).toMatch(/^ERROR/);
    });
  },
);
