// What `cli.ts up KIND` starts, and the JSON it prints for each kind.
import { startCertNode } from "./cert-node.js";
import { openControlMaster } from "./control-master.js";
import { startGcs } from "./gcs.js";
import { canUseNamespaces, createTopology } from "./netns.js";
import { startOtpNode } from "./otp-node.js";
import { startProxyCommandNode } from "./proxycommand-node.js";
import { startS3 } from "./s3.js";
import { startSlurm, type Slurm, type SlurmOptions } from "./slurm.js";
import { startSshd, type Sshd } from "./sshd.js";

export interface KindOptions {
  netns?: string;
  host?: string;
  extraConfig?: string[];
  encryptedKey?: boolean;
  unauthorizedKey?: boolean;
  backend?: string;
  slurm?: boolean;
  computeSshd?: boolean;
  topology?: boolean;
  sshd?: boolean;
  controlMaster?: boolean;
}

type Starter = (o: KindOptions) => Promise<Record<string, unknown>>;

/** The JSON fields of an sshd (methods dropped). */
export function sshdInfo(s: Sshd): Record<string, unknown> {
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    keyPath: s.keyPath,
    knownHostsPath: s.knownHostsPath,
    hostKeyPublic: s.hostKeyPublic,
    netns: s.netns ?? null,
    pid: s.pid,
    dir: s.dir,
    logPath: s.logPath,
    configPath: s.configPath,
    encryptedKeyPath: s.encryptedKeyPath ?? null,
    encryptedKeyPassphrase: s.encryptedKeyPassphrase ?? null,
    unauthorizedKeyPath: s.unauthorizedKeyPath ?? null,
    sshArgs: s.sshArgs(),
  };
}

/** The JSON fields of a Slurm cluster. */
export function slurmInfo(s: Slurm): Record<string, unknown> {
  return {
    SLURM_CONF: s.confPath,
    env: s.env,
    dir: s.dir,
    clusterName: s.clusterName,
    nodeName: s.nodeName,
    partition: s.partition,
    ctldPort: s.ctldPort,
    slurmdPort: s.slurmdPort,
    clientNetns: s.clientNetns ?? null,
    commandPrefix: s.commandPrefix,
    logs: s.logs,
  };
}

async function upTopology(o: KindOptions): Promise<Record<string, unknown>> {
  const support = await canUseNamespaces();
  if (!support.ok) throw new Error(`cannot create network namespaces: ${support.reason}`);
  const t = await createTopology();
  const info: Record<string, unknown> = { head: t.head, compute: t.compute, hostAddr: t.hostAddr };
  const headConfig = [`ListenAddress ${t.head.computeSideAddr}`, ...(o.extraConfig ?? [])];
  if (o.slurm) {
    const slurm = await startSlurm({
      controller: { netns: t.head.ns, addr: t.head.computeSideAddr },
      node: { netns: t.compute.ns, addr: t.compute.addr },
    });
    info.slurm = slurmInfo(slurm);
    // Logins on the head node see the cluster, like on a real one.
    headConfig.push(`SetEnv SLURM_CONF=${slurm.confPath}`);
  }
  const sshd = await startSshd({
    netns: t.head.ns,
    host: t.head.addr,
    extraConfig: headConfig,
    encryptedKey: o.encryptedKey,
    unauthorizedKey: o.unauthorizedKey,
  });
  info.sshd = sshdInfo(sshd);
  if (o.computeSshd) {
    info.computeSshd = sshdInfo(await startSshd({ netns: t.compute.ns, host: t.compute.addr }));
  }
  return info;
}

async function upSlurm(o: KindOptions): Promise<Record<string, unknown>> {
  if (o.topology) return upTopology({ ...o, slurm: true });
  const opts: SlurmOptions = {};
  const slurm = await startSlurm(opts);
  const info = slurmInfo(slurm);
  if (o.sshd) {
    const extraConfig = [`SetEnv SLURM_CONF=${slurm.confPath}`, ...(o.extraConfig ?? [])];
    info.sshd = sshdInfo(await startSshd({ extraConfig }));
  }
  return info;
}

async function upS3(): Promise<Record<string, unknown>> {
  const s = await startS3();
  return {
    endpoint: s.endpoint,
    host: s.host,
    port: s.port,
    region: s.region,
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
    pid: s.pid,
    logPath: s.logPath,
    env: s.env,
  };
}

async function upGcs(o: KindOptions): Promise<Record<string, unknown>> {
  if (o.backend !== undefined && o.backend !== "memory" && o.backend !== "filesystem") {
    throw new Error(`Expected \`--backend\` to be memory or filesystem, got \`${o.backend}\``);
  }
  const g = await startGcs({ backend: o.backend });
  return {
    apiEndpoint: g.apiEndpoint,
    host: g.host,
    port: g.port,
    projectId: g.projectId,
    pid: g.pid,
    logPath: g.logPath,
    env: g.env,
  };
}

async function upCert(o: KindOptions): Promise<Record<string, unknown>> {
  const n = await startCertNode({ extraConfig: o.extraConfig });
  return {
    configPath: n.configPath,
    alias: n.alias,
    expiredAlias: n.expiredAlias,
    keyPath: n.key.keyPath,
    certPath: n.key.certPath,
    expiredKeyPath: n.expiredKey.keyPath,
    expiredCertPath: n.expiredKey.certPath,
    caKeyPath: n.caKeyPath,
    caPublicKeyPath: n.caPublicKeyPath,
    dir: n.dir,
    // ssh loads `<key>-cert.pub` next to an identity by itself.
    sshArgs: n.sshd.sshArgs({ identity: n.key.keyPath }),
    sshd: sshdInfo(n.sshd),
  };
}

async function upOtp(o: KindOptions): Promise<Record<string, unknown>> {
  const n = await startOtpNode({ extraConfig: o.extraConfig, controlPath: o.controlMaster });
  let controlMasterPid: number | null = null;
  if (o.controlMaster) {
    const m = await openControlMaster({
      configPath: n.configPath,
      alias: n.alias,
      socketPath: n.controlPath!,
      env: n.askpassEnv(),
      marker: n.dir,
    });
    controlMasterPid = m.pid;
  }
  return {
    configPath: n.configPath,
    alias: n.alias,
    secretPath: n.secretPath,
    codeCommand: n.codeCommand,
    wrongCodeCommand: n.wrongCodeCommand,
    askpassPath: n.askpassPath,
    askpassEnv: n.askpassEnv(),
    wrongAskpassEnv: n.askpassEnv({ wrong: true }),
    pamService: n.pamService,
    controlPath: n.controlPath ?? null,
    controlMasterPid,
    dir: n.dir,
    sshd: sshdInfo(n.sshd),
  };
}

async function upProxyCommand(): Promise<Record<string, unknown>> {
  const n = await startProxyCommandNode();
  return {
    configPath: n.configPath,
    alias: n.alias,
    jumpAlias: n.jumpAlias,
    hiddenHostName: n.hiddenHostName,
    knownHostsPath: n.knownHostsPath,
    dir: n.dir,
    head: n.topology.head,
    compute: n.topology.compute,
    hostAddr: n.topology.hostAddr,
    jump: sshdInfo(n.jump),
    target: sshdInfo(n.target),
  };
}

export const KINDS: Record<string, Starter> = {
  s3: upS3,
  gcs: upGcs,
  topology: upTopology,
  slurm: upSlurm,
  cert: upCert,
  otp: upOtp,
  proxycommand: upProxyCommand,
  sshd: async (o) =>
    sshdInfo(
      await startSshd({
        netns: o.netns,
        host: o.host,
        extraConfig: o.extraConfig,
        encryptedKey: o.encryptedKey,
        unauthorizedKey: o.unauthorizedKey,
      }),
    ),
};
