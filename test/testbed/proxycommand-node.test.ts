import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stopAllAfterAll, warnSkip } from "./hooks.js";
import { leftoverProcesses } from "./leftovers.js";
import { canUseNamespaces } from "./netns.js";
import { tcpProbe } from "./procs.js";
import { startProxyCommandNode, type ProxyCommandNode } from "./proxycommand-node.js";

const run = promisify(execFile);
stopAllAfterAll();

const ns = await canUseNamespaces();
if (!ns.ok) warnSkip("ProxyCommand node tests", ns.reason);

describe.skipIf(!ns.ok)(`ProxyCommand node${ns.ok ? "" : ` (SKIPPED: ${ns.reason})`}`, () => {
  let n: ProxyCommandNode;
  const ssh = (args: string[]) => run("ssh", ["-F", n.configPath, ...args], { timeout: 20000 });

  beforeAll(async () => {
    const t0 = Date.now();
    n = await startProxyCommandNode();
    console.log(`ProxyCommand node up in ${Date.now() - t0} ms`);
  }, 30000);
  afterAll(async () => {
    const dirs = [n?.dir, n?.jump.dir, n?.target.dir];
    const head = n?.topology.head.ns;
    await n?.stop();
    for (const d of dirs) if (d) expect(leftoverProcesses(d)).toEqual([]);
    if (head) {
      const { stdout } = await run("ip", ["netns", "list"]);
      expect(stdout).not.toContain(head);
      await expect(run("ls", [`/etc/netns/${head}`])).rejects.toThrow();
    }
  }, 30000);

  it("reaches the hidden host through the jump with `ssh -F CONFIG HOST`", async () => {
    expect(readFileSync(n.configPath, "utf8")).toContain(
      `ProxyCommand ssh -F ${n.configPath} -W %h:%p jump`,
    );
    const { stdout } = await ssh([n.alias, "echo $SSH_CONNECTION"]);
    // The target sees the jump's address on the compute link as the client.
    const [client, , server, port] = stdout.trim().split(" ");
    expect([client, server, Number(port)]).toEqual([
      n.topology.head.computeSideAddr,
      n.topology.compute.addr,
      n.target.port,
    ]);
    expect(readFileSync(n.jump.logPath, "utf8")).toMatch(/Accepted publickey for /);
  });

  it("its HostName resolves only on the jump host", async () => {
    await expect(run("getent", ["hosts", n.hiddenHostName])).rejects.toMatchObject({ code: 2 });
    const inHead = await n.topology.exec(n.topology.head.ns, ["getent", "hosts", n.hiddenHostName]);
    expect(inHead.stdout.trim().split(/\s+/)[0]).toBe(n.topology.compute.addr);
  });

  it("is not reachable without the jump, by name or by address", async () => {
    await expect(ssh(["-o", "ProxyCommand=none", n.alias, "true"])).rejects.toThrow(
      /Could not resolve hostname/,
    );
    expect(await tcpProbe(n.topology.compute.addr, n.target.port, 1000)).toBe(false);
  });

  it("fails when the ProxyCommand exits", async () => {
    await expect(ssh(["-o", "ProxyCommand=false", n.alias, "true"])).rejects.toThrow(
      /Connection closed|kex_exchange_identification/,
    );
  });
});
