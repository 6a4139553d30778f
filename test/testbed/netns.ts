// Two network namespaces as a small cluster: "head" joined to the default namespace by a veth
// pair, "compute" joined only to head. Compute has no route to the default namespace.
import { execFile, execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { killAll } from "./procs.js";
import { registerExitCleanup, registerStopper } from "./registry.js";

const run = promisify(execFile);

export interface Topology {
  head: {
    ns: string /** head's address on the link to the default namespace */;
    addr: string /** head's address on the link to compute */;
    computeSideAddr: string;
  };
  compute: { ns: string; addr: string };
  /** The default namespace's address on the link to head. */
  hostAddr: string;
  /** Runs a command inside a namespace (`ip netns exec ns ...`); rejects on non-zero exit. */
  exec(
    ns: string,
    cmd: string[],
    opts?: { timeoutMs?: number },
  ): Promise<{ stdout: string; stderr: string }>;
  destroy(): Promise<void>;
}

let probe: Promise<{ ok: boolean; reason: string }> | undefined;

/**
 * Probes once whether namespaces can be made here (root, `ip netns add` works).
 * `PSC_TESTBED_NO_NETNS=1` forces "no" (to exercise the skip path).
 */
export function canUseNamespaces(): Promise<{ ok: boolean; reason: string }> {
  probe ??= (async () => {
    if (process.env.PSC_TESTBED_NO_NETNS === "1")
      return { ok: false, reason: "PSC_TESTBED_NO_NETNS=1 is set" };
    if (process.getuid?.() !== 0) return { ok: false, reason: "network namespaces need root" };
    const name = `psc-p-${randomBytes(3).toString("hex")}`;
    try {
      await run("ip", ["netns", "add", name]);
      await run("ip", ["netns", "del", name]);
      return { ok: true, reason: "" };
    } catch (err) {
      const msg =
        err instanceof Error ? err.message.split("\n").slice(0, 2).join(" ") : String(err);
      return { ok: false, reason: `\`ip netns add\` failed: ${msg}` };
    }
  })();
  return probe;
}

function ip(args: string[]): Promise<unknown> {
  return run("ip", args).catch((err: Error & { stderr?: string }) => {
    throw new Error(`ip ${args.join(" ")}: ${err.stderr?.trim() || err.message}`);
  });
}

/** Picks a 10.213.X.0/24 not already configured in the default namespace. */
function freeUplinkSubnet(): number {
  const used = execFileSync("ip", ["-4", "-o", "addr", "show"], { encoding: "utf8" });
  for (let i = 0; i < 200; i++) {
    const x = randomInt(1, 255);
    if (!used.includes(`10.213.${x}.`)) return x;
  }
  throw new Error("no free 10.213.X.0/24 subnet for a test topology");
}

function deleteNamespaceSync(ns: string): void {
  try {
    const pids = execFileSync("ip", ["netns", "pids", ns], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"], // "Cannot open network namespace" when already gone
    })
      .split("\n")
      .filter(Boolean)
      .map(Number);
    killAll(pids);
    execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
  } catch {
    /* already gone */
  }
}

export interface TopologyOptions {
  /**
   * A host name for compute.addr that only head resolves (a cluster-internal name). Written to
   * /etc/netns/<head>/hosts, which `ip netns exec` mounts over /etc/hosts for what it starts in
   * head (not for `nsenter`); the default namespace does not resolve it.
   */
  computeHostName?: string;
}

const NETNS_ETC = "/etc/netns";

/** Removes /etc/netns/psc-h-* dirs (computeHostName) whose namespace is gone, e.g. after a crash. */
function sweepStaleNetnsEtc(): void {
  let names: string[] = [];
  try {
    names = readdirSync(NETNS_ETC);
  } catch {
    return;
  }
  for (const name of names) {
    if (/^psc-h-[0-9a-f]{6}$/.test(name) && !existsSync(`/run/netns/${name}`)) {
      rmSync(join(NETNS_ETC, name), { recursive: true, force: true });
    }
  }
}

/** Creates head + compute namespaces with veth links. Requires `canUseNamespaces()`. */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const id = randomBytes(3).toString("hex");
  const head = `psc-h-${id}`;
  const compute = `psc-c-${id}`;
  const headEtc = join(NETNS_ETC, head);
  const up = freeUplinkSubnet();
  // The compute link lives only inside head/compute, so its subnet cannot clash with the host;
  // it must differ from the uplink's, which head also has (r = 252 gave inner === up: head then
  // had one /24 on both links and reached nothing, about once in 250 topologies)
  const inner = ((up + 1 + randomInt(0, 252)) % 254) + 1;
  const t: Topology = {
    head: { ns: head, addr: `10.213.${up}.2`, computeSideAddr: `10.213.${inner}.1` },
    compute: { ns: compute, addr: `10.213.${inner}.2` },
    hostAddr: `10.213.${up}.1`,
    exec: async (ns, cmd, opts = {}) => {
      const [file, ...args] = cmd;
      return run("ip", ["netns", "exec", ns, file!, ...args], { timeout: opts.timeoutMs ?? 30000 });
    },
    destroy: async () => {
      unregisterStop();
      unregisterExit();
      deleteNamespaceSync(compute);
      deleteNamespaceSync(head);
      rmSync(headEtc, { recursive: true, force: true });
    },
  };
  const unregisterExit = registerExitCleanup(() => {
    deleteNamespaceSync(compute);
    deleteNamespaceSync(head);
    rmSync(headEtc, { recursive: true, force: true });
  });
  const unregisterStop = registerStopper(() => t.destroy());
  const [hostVeth, headUp, headDown, computeVeth] = [
    `psu${id}a`,
    `psu${id}b`,
    `psc${id}a`,
    `psc${id}b`,
  ];
  try {
    if (opts.computeHostName) {
      sweepStaleNetnsEtc();
      mkdirSync(headEtc, { recursive: true });
      const hosts = `127.0.0.1 localhost\n::1 localhost\n${t.compute.addr} ${opts.computeHostName}\n`;
      writeFileSync(join(headEtc, "hosts"), hosts);
    }
    await ip(["netns", "add", head]);
    await ip(["netns", "add", compute]);
    await ip(["link", "add", hostVeth, "type", "veth", "peer", "name", headUp, "netns", head]);
    await ip([
      "link",
      "add",
      headDown,
      "netns",
      head,
      "type",
      "veth",
      "peer",
      "name",
      computeVeth,
      "netns",
      compute,
    ]);
    await ip(["addr", "add", `${t.hostAddr}/24`, "dev", hostVeth]);
    await ip(["link", "set", hostVeth, "up"]);
    await ip(["-n", head, "addr", "add", `${t.head.addr}/24`, "dev", headUp]);
    await ip(["-n", head, "addr", "add", `${t.head.computeSideAddr}/24`, "dev", headDown]);
    await ip(["-n", compute, "addr", "add", `${t.compute.addr}/24`, "dev", computeVeth]);
    for (const [ns, dev] of [
      [head, headUp],
      [head, headDown],
      [compute, computeVeth],
      [head, "lo"],
      [compute, "lo"],
    ]) {
      await ip(["-n", ns!, "link", "set", dev!, "up"]);
    }
  } catch (err) {
    await t.destroy();
    throw err;
  }
  return t;
}
