/**
 * The soak's test bed: three pools, each its own sshd in a network namespace (head_a and head_b
 * run their workers on the head node; slurm's head node runs slurmctld and its compute node,
 * a second namespace reachable only from the head, runs slurmd and the workers, which reach the
 * interchange through the relay), moto (S3) and fake-gcs-server (GCS) on loopback, the ssh
 * config naming the pools and the executors.json for them.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startGcs, type GcsServer } from "../../test/testbed/gcs.js";
import { canUseNamespaces, createTopology, type Topology } from "../../test/testbed/netns.js";
import { startS3, type S3Server } from "../../test/testbed/s3.js";
import { startSlurm, type Slurm } from "../../test/testbed/slurm.js";
import { startSshd, type Sshd } from "../../test/testbed/sshd.js";

export interface Pool {
  /** executor label */
  label: string;
  /** ssh config alias */
  alias: string;
  sshd: Sshd;
  topology: Topology;
  /** namespaces where this pool's workers and relays run */
  namespaces: string[];
  /** RUN_DIR on the pool */
  runDir: string;
}

export interface Bed {
  pools: Pool[];
  s3: S3Server;
  gcs: GcsServer;
  slurm: Slurm;
  sshConfig: string;
  executors: string;
  /** environment for `parsl-sidecar run` and the workflow */
  env: Record<string, string>;
  stop(): Promise<void>;
}

const repo = resolve(import.meta.dirname, "..", "..");
export const soakDir = join(repo, "bench", "soak");
export const venvBin = join(repo, ".venv", "bin");

/** Starts everything under `tmp`; stops what it started when a part fails. */
export async function startBed(tmp: string, log: (s: string) => void): Promise<Bed> {
  const ns = await canUseNamespaces();
  if (!ns.ok) throw new Error(`the soak needs network namespaces (run as root): ${ns.reason}`);
  const stops: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    // remote sessions get their own HOME: root's ~/.bashrc here runs `pyenv rehash`
    const home = join(tmp, "home");
    mkdirSync(home, { recursive: true });
    const pools: Pool[] = [];
    for (const [label, alias] of [
      ["head_a", "soak_a"],
      ["head_b", "soak_b"],
    ] as const) {
      const t = await createTopology();
      stops.push(() => t.destroy());
      const sshd = await startSshd({
        netns: t.head.ns,
        host: t.head.addr,
        extraConfig: [`SetEnv HOME=${home}`],
      });
      stops.push(() => sshd.stop());
      pools.push({
        label,
        alias,
        sshd,
        topology: t,
        namespaces: [t.head.ns],
        runDir: join(tmp, "pools", label),
      });
      log(`pool ${label}: sshd ${sshd.host}:${sshd.port} in ${t.head.ns}`);
    }
    const t = await createTopology();
    stops.push(() => t.destroy());
    const slurm = await startSlurm({
      controller: { netns: t.head.ns, addr: t.head.computeSideAddr },
      node: { netns: t.compute.ns, addr: t.compute.addr },
    });
    stops.push(() => slurm.stop());
    const sshd = await startSshd({
      netns: t.head.ns,
      host: t.head.addr,
      extraConfig: [
        `ListenAddress ${t.head.computeSideAddr}`,
        `SetEnv SLURM_CONF=${slurm.confPath} HOME=${home}`,
      ],
    });
    stops.push(() => sshd.stop());
    pools.push({
      label: "slurm",
      alias: "soak_s",
      sshd,
      topology: t,
      namespaces: [t.head.ns, t.compute.ns],
      runDir: join(tmp, "pools", "slurm"),
    });
    log(`pool slurm: sshd ${sshd.host}:${sshd.port} in ${t.head.ns}, slurmd in ${t.compute.ns}`);
    const s3 = await startS3();
    stops.push(() => s3.stop());
    const gcs = await startGcs();
    stops.push(() => gcs.stop());
    log(`S3 ${s3.endpoint} (pid ${s3.pid}), GCS ${gcs.apiEndpoint}`);

    const sshConfig = join(tmp, "ssh_config");
    writeFileSync(
      sshConfig,
      pools
        .map(
          (p) =>
            `Host ${p.alias}\n  HostName ${p.sshd.host}\n  Port ${p.sshd.port}\n  User ${p.sshd.user}\n  IdentityFile ${p.sshd.keyPath}\n  UserKnownHostsFile ${p.sshd.knownHostsPath}\n  StrictHostKeyChecking yes\n`,
        )
        .join("\n"),
      { mode: 0o600 },
    );
    const python = join(venvBin, "python");
    const common = (p: Pool): Record<string, unknown> => ({
      PYTHON: python,
      RUN_DIR: p.runDir,
      WORKER_LOGDIR_ROOT: join(p.runDir, "logs"),
      WORKER_INIT: `export PYTHONPATH=${soakDir}`,
      CORES_PER_WORKER: 1,
      MAX_WORKERS_PER_NODE: 2,
      INIT_BLOCKS: 1,
      MIN_BLOCKS: 1,
      MAX_BLOCKS: 1,
      // a manager killed with its block is declared lost (its tasks retried) after this long
      // without heartbeats, rather than Parsl's 120 s; the drops last a second or two
      HEARTBEAT_PERIOD: 5,
      HEARTBEAT_THRESHOLD: 30,
    });
    const executors: Record<string, unknown> = {};
    for (const p of pools.slice(0, 2)) executors[p.label] = { POOL: p.alias, ...common(p) };
    const sp = pools[2]!;
    executors[sp.label] = {
      SSH_TARGET: sp.alias,
      PROVIDER: "slurm",
      PARTITION: slurm.partition,
      EXCLUSIVE: false,
      WALLTIME: "02:00:00",
      ...common(sp),
    };
    const executorsPath = join(tmp, "executors.json");
    writeFileSync(executorsPath, `${JSON.stringify(executors, null, 2)}\n`);
    const env: Record<string, string> = {
      PARSL_SIDECAR_SSH_CONFIG: sshConfig,
      ...s3.env,
      ...gcs.env,
      AWS_EC2_METADATA_DISABLED: "true",
      METADATA_SERVER_DETECTION: "none",
      PATH: `${venvBin}:${process.env.PATH ?? ""}`,
      PYTHONPATH: soakDir,
    };
    return {
      pools,
      s3,
      gcs,
      slurm,
      sshConfig,
      executors: executorsPath,
      env,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
