/** One executor's settings with every default applied: what completion, preflight and Python use. */
import type { ProviderName } from "./keys.js";

export interface ResolvedExecutor {
  label: string;
  pool: string;
  /** `local` or an ssh target (user@host[:port] or a ~/.ssh/config alias) */
  target: string;
  isLocal: boolean;
  resolver: "none" | "parallelworks";
  provider: ProviderName;
  /** directories on the pool (may start with ~/ or $HOME/) */
  runDir: string;
  workerLogdirRoot: string;
  scriptDir: string;
  /** interpreter on the pool that runs the workers */
  python: string;
  workerInit: string;
  coresPerWorker: number;
  maxWorkersPerNode: number | null;
  memPerWorker: number | null;
  prefetchCapacity: number;
  nodesPerBlock: number;
  initBlocks: number;
  minBlocks: number;
  maxBlocks: number;
  parallelism: number;
  walltime: string | null;
  launcher: string;
  cmdTimeout: number;
  workerDebug: boolean;
  heartbeatPeriod: number;
  heartbeatThreshold: number;
  /** provider-specific options, Parsl's keyword names (partition, account, qos, ...) */
  providerOptions: Record<string, unknown>;
  /** filled by completion */
  hostIp: string | null;
  hostUser: string | null;
  interchangePort: number | null;
  workerPort: number | null;
  dialAddress: string | null;
  tunnelId: string | null;
}

const str = (v: unknown): string | undefined => (typeof v === "string" && v !== "" ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);

function stripSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}

/** The SSH target of an entry: SSH_TARGET, else HOST_USER@HOST_IP with a resolver, else POOL. */
export function targetOf(e: Record<string, unknown>): string {
  const explicit = str(e.SSH_TARGET);
  if (explicit) return explicit;
  if (e.RESOLVER === "parallelworks" && str(e.HOST_IP))
    return str(e.HOST_USER) ? `${str(e.HOST_USER)}@${str(e.HOST_IP)}` : str(e.HOST_IP)!;
  return str(e.POOL) ?? "local";
}

/** Apply defaults to a checked (normalized) entry. */
export function resolveExecutor(label: string, e: Record<string, unknown>): ResolvedExecutor {
  const provider = (str(e.PROVIDER) ?? "local") as ProviderName;
  const target = targetOf(e);
  const runDir = stripSlash(str(e.RUN_DIR) ?? "~/parsl-sidecar");
  const condaPython =
    str(e.CONDA_DIR) && str(e.CONDA_ENV)
      ? `${stripSlash(str(e.CONDA_DIR)!)}/envs/${str(e.CONDA_ENV)}/bin/python`
      : undefined;
  const opts: Record<string, unknown> = {};
  const copy = (key: string, name: string): void => {
    if (e[key] !== undefined) opts[name] = e[key];
  };
  if (provider === "slurm") {
    copy("PARTITION", "partition");
    copy("ACCOUNT", "account");
    copy("QOS", "qos");
    copy("CONSTRAINT", "constraint");
    copy("CLUSTERS", "clusters");
    copy("CORES_PER_NODE", "cores_per_node");
    copy("MEM_PER_NODE", "mem_per_node");
    copy("GPUS_PER_NODE", "gpus_per_node");
    copy("GRES", "gres");
    copy("EXCLUSIVE", "exclusive");
    copy("SCHEDULER_OPTIONS", "scheduler_options");
  } else if (provider === "pbspro") {
    copy("ACCOUNT", "account");
    copy("QUEUE", "queue");
    copy("CPUS_PER_NODE", "cpus_per_node");
    copy("SELECT_OPTIONS", "select_options");
    copy("SCHEDULER_OPTIONS", "scheduler_options");
  }
  return {
    label,
    pool: str(e.POOL) ?? target,
    target,
    isLocal: target === "local",
    resolver: e.RESOLVER === "parallelworks" ? "parallelworks" : "none",
    provider,
    runDir,
    workerLogdirRoot: stripSlash(str(e.WORKER_LOGDIR_ROOT) ?? runDir),
    scriptDir: stripSlash(str(e.SSH_CHANNEL_SCRIPT_DIR) ?? `${runDir}/submit_scripts`),
    python: str(e.PYTHON) ?? condaPython ?? "python3",
    workerInit: str(e.WORKER_INIT) ?? "",
    coresPerWorker: num(e.CORES_PER_WORKER) ?? 1,
    maxWorkersPerNode: num(e.MAX_WORKERS_PER_NODE) ?? null,
    memPerWorker: num(e.MEM_PER_WORKER) ?? null,
    prefetchCapacity: num(e.PREFETCH_CAPACITY) ?? 0,
    nodesPerBlock: num(e.NODES_PER_BLOCK) ?? 1,
    initBlocks: num(e.INIT_BLOCKS) ?? 1,
    minBlocks: num(e.MIN_BLOCKS) ?? 0,
    maxBlocks: num(e.MAX_BLOCKS) ?? Math.max(1, num(e.INIT_BLOCKS) ?? 1),
    parallelism: num(e.PARALLELISM) ?? 1,
    walltime: str(e.WALLTIME) ?? null,
    launcher: str(e.LAUNCHER) ?? "single_node",
    cmdTimeout: num(e.CMD_TIMEOUT) ?? 30,
    workerDebug: e.WORKER_DEBUG === true,
    heartbeatPeriod: num(e.HEARTBEAT_PERIOD) ?? 30,
    heartbeatThreshold: num(e.HEARTBEAT_THRESHOLD) ?? 120,
    providerOptions: opts,
    hostIp: str(e.HOST_IP) ?? null,
    hostUser: str(e.HOST_USER) ?? null,
    interchangePort: num(e.INTERCHANGE_PORT) ?? null,
    workerPort: num(e.WORKER_PORT) ?? null,
    dialAddress: str(e.DIAL_ADDRESS) ?? null,
    tunnelId: str(e.TUNNEL_ID) ?? null,
  };
}
