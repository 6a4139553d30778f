import { execFile } from "node:child_process";
import { createServer, type Server } from "node:net";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll, warnSkip } from "./hooks.js";
import { canUseNamespaces, createTopology, type Topology } from "./netns.js";
import { probeInNetns, tcpProbe } from "./procs.js";
import { startSshd, type Sshd } from "./sshd.js";
import { leftoverProcesses } from "./leftovers.js";

const run = promisify(execFile);
const support = await canUseNamespaces();
if (!support.ok) warnSkip("network namespace tests", support.reason);
stopAllAfterAll();

describe.skipIf(!support.ok)(
  `netns topology${support.ok ? "" : ` (SKIPPED: ${support.reason})`}`,
  () => {
    let t: Topology;
    let sshd: Sshd;
    let hostServer: Server;
    let hostPort = 0;
    beforeAll(async () => {
      t = await createTopology();
      sshd = await startSshd({
        netns: t.head.ns,
        host: t.head.addr,
        extraConfig: [`ListenAddress ${t.head.computeSideAddr}`],
      });
      // A listener in the default namespace on every address: compute must still not reach it.
      hostServer = createServer((s) => s.end());
      await new Promise<void>((r) => hostServer.listen(0, "0.0.0.0", r));
      hostPort = (hostServer.address() as { port: number }).port;
    }, 30000);
    afterAll(async () => {
      hostServer?.close();
      const dir = sshd?.dir;
      await sshd?.stop();
      await t?.destroy();
      if (dir) expect(leftoverProcesses(dir)).toEqual([]);
      const { stdout } = await run("ip", ["netns", "list"]);
      expect(stdout).not.toContain(t.head.ns);
      expect(stdout).not.toContain(t.compute.ns);
    }, 30000);

    it("sshd in head is reachable from the default namespace, over TCP and ssh", {
      timeout: 30000,
    }, async () => {
      expect(await tcpProbe(t.head.addr, sshd.port)).toBe(true);
      const { stdout } = await run(
        "ssh",
        [...sshd.sshArgs(), "ip -o -4 addr show | grep -c 10.213"],
        { timeout: 20000 },
      );
      expect(Number(stdout.trim())).toBe(2); // the shell runs inside head: both of its links
    });

    it("head reaches the default namespace", { timeout: 20000 }, async () => {
      expect(await probeInNetns(t.head.ns, t.hostAddr, hostPort)).toBe(true);
    });

    it("compute reaches head but not the default namespace", { timeout: 20000 }, async () => {
      expect(await probeInNetns(t.compute.ns, t.head.computeSideAddr, sshd.port)).toBe(true);
      expect(await probeInNetns(t.compute.ns, t.hostAddr, hostPort)).toBe(false);
      expect(await probeInNetns(t.compute.ns, t.head.addr, sshd.port)).toBe(false);
      const { stdout } = await t.exec(t.compute.ns, ["ip", "route"]);
      expect(stdout).not.toMatch(/default/);
    });

    it("exec runs inside the namespace", { timeout: 20000 }, async () => {
      const { stdout } = await t.exec(t.compute.ns, ["ip", "-o", "-4", "addr", "show"]);
      expect(stdout).toContain(t.compute.addr);
      expect(stdout).not.toContain(t.hostAddr);
    });
  },
);
