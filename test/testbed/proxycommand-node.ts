// A host reachable only through `ProxyCommand ssh -W %h:%p jump`, as sites behind a bastion are:
// the target sshd runs in the compute namespace (no route from here), under a made-up name that
// only the jump host (an sshd in the head namespace) resolves, through /etc/netns/<head>/hosts.
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { canUseNamespaces, createTopology, type Topology } from "./netns.js";
import { makeTempDir, removeTempDir } from "./registry.js";
import { sshdEntry, writeSshConfig } from "./ssh-config.js";
import { knownHostsName, startSshd, type Sshd } from "./sshd.js";

export interface ProxyCommandNode {
  topology: Topology;
  /** The jump host: sshd in head, reached from here at topology.head.addr. */
  jump: Sshd;
  /** The hidden host: sshd in compute on topology.compute.addr, which only head reaches. */
  target: Sshd;
  /** The target's HostName: resolves inside head only (NXDOMAIN here: `.invalid`). */
  hiddenHostName: string;
  /** Holds ssh_config and the target's known_hosts (under hiddenHostName). */
  dir: string;
  /** ssh_config: `jumpAlias` (direct) and `alias` (`ProxyCommand ssh -F CONFIG -W %h:%p jump`). */
  configPath: string;
  alias: string;
  jumpAlias: string;
  knownHostsPath: string;
  stop(): Promise<void>;
}

/** Starts the jump host and the hidden host. Needs root and network namespaces. */
export async function startProxyCommandNode(): Promise<ProxyCommandNode> {
  const support = await canUseNamespaces();
  if (!support.ok) {
    throw new Error(`the ProxyCommand node needs network namespaces: ${support.reason}`);
  }
  const dir = makeTempDir("proxycommand");
  let t: Topology | undefined;
  const sshds: Sshd[] = [];
  const cleanup = async () => {
    for (const s of sshds.reverse()) await s.stop();
    await t?.destroy();
    removeTempDir(dir);
  };
  // No stopper of its own: the sshds and the topology have theirs (stopAll runs them newest
  // first: target, jump, namespaces) and stopAll removes the temp dir.
  try {
    const hiddenHostName = `node-${randomBytes(3).toString("hex")}.cluster.psc-testbed.invalid`;
    const topo = await createTopology({ computeHostName: hiddenHostName });
    t = topo;
    const jump = await startSshd({ netns: topo.head.ns, host: topo.head.addr });
    sshds.push(jump);
    const target = await startSshd({ netns: topo.compute.ns, host: topo.compute.addr });
    sshds.push(target);
    const configPath = join(dir, "ssh_config");
    const knownHostsPath = join(dir, "known_hosts_hidden");
    // ssh checks the key under the HostName it was given, not the address the jump reached.
    const hostKey = target.hostKeyPublic.split(" ").slice(1).join(" ");
    writeFileSync(knownHostsPath, `${knownHostsName(hiddenHostName, target.port)} ${hostKey}\n`);
    writeSshConfig(dir, [
      sshdEntry("jump", jump),
      sshdEntry("hidden", target, {
        hostName: hiddenHostName,
        userKnownHostsFile: knownHostsPath,
        proxyCommand: `ssh -F ${configPath} -W %h:%p jump`,
      }),
    ]);
    return {
      topology: topo,
      jump,
      target,
      hiddenHostName,
      dir,
      configPath,
      alias: "hidden",
      jumpAlias: "jump",
      knownHostsPath,
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
