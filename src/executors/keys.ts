/**
 * Every key of an executors.json entry, once: its value type, what it means, its group and
 * default. The zod schema, the JSON Schema, `executors explain` and the web form all come from
 * this table.
 */
import { z } from "zod";
import { boolish, numeric, port, remotePath, text, walltime } from "./fields.js";

export type KeyGroup = "pool" | "provider" | "workers" | "environment" | "completed";

export const GROUP_TITLES: Record<KeyGroup, string> = {
  pool: "Reaching the pool",
  provider: "Provider (where and how workers start)",
  workers: "Workers",
  environment: "Environment on the pool (the environments service reads these)",
  completed: "Filled by `parsl-sidecar executors complete` (do not edit by hand)",
};

export const PROVIDERS = ["local", "slurm", "pbspro"] as const;
export type ProviderName = (typeof PROVIDERS)[number];
export const LAUNCHERS = [
  "single_node",
  "srun",
  "simple",
  "mpiexec",
  "aprun",
  "jsrun",
  "gnu_parallel",
] as const;
export const RESOLVERS = ["none", "parallelworks"] as const;
export const SSH_TRANSPORTS = ["auto", "openssh", "ssh2"] as const;

export interface KeySpec {
  name: string;
  group: KeyGroup;
  schema: z.ZodType;
  description: string;
  /** shown as the default in explain and JSON Schema */
  default?: string;
  /** only meaningful with these providers */
  providers?: readonly ProviderName[];
  /** kept for old files; ignored */
  deprecated?: string;
  example?: string;
}

const pos = (example: string): z.ZodType => numeric({ integer: true, min: 1, example });
const nonneg = (example: string): z.ZodType => numeric({ integer: true, min: 0, example });

export const KEYS: readonly KeySpec[] = [
  // reaching the pool
  {
    name: "POOL",
    group: "pool",
    schema: text("a pool name"),
    example: "koehr_cpu",
    description:
      "Name of the pool. Used as the SSH target (a Host alias of ~/.ssh/config) when SSH_TARGET is not set, and as the pool's name for a RESOLVER (Parallel Works: underscores are removed).",
  },
  {
    name: "SSH_TARGET",
    group: "pool",
    schema: text("an SSH target"),
    example: "me@login.cluster.org:22",
    default: "POOL (or HOST_USER@HOST_IP with a RESOLVER)",
    description:
      "How to reach the pool's head node: `user@host[:port]`, a ~/.ssh/config Host alias (HostName, User, Port, IdentityFile, ProxyJump are honoured), or `local` for this machine (no SSH).",
  },
  {
    name: "SSH_TRANSPORT",
    group: "pool",
    schema: z.enum(SSH_TRANSPORTS, { error: `expected one of ${SSH_TRANSPORTS.join(", ")}` }),
    default: "PARSL_SIDECAR_SSH_TRANSPORT, else auto",
    description:
      "What carries the SSH connection to the pool: `openssh` (your own `ssh` through a ControlMaster: everything your ssh_config does works, certificates and ProxyCommand included), `ssh2` (built in), or `auto` (openssh when `ssh` is OpenSSH 8.4 or newer, else ssh2). The first connection to a pool decides for everything that uses it.",
  },
  {
    name: "RESOLVER",
    group: "pool",
    schema: z.enum(RESOLVERS, { error: `expected one of ${RESOLVERS.join(", ")}` }),
    default: "none",
    description:
      "Ask a platform for the head node's address: `parallelworks` polls the Parallel Works API (PW_API_KEY; the platform from PARSL_CLIENT_HOST, PW_PLATFORM_HOST or PARSL_SIDECAR_PW_URL; HOST_USER from PW_USER) until the pool is on and has a master node, and fills HOST_IP and HOST_USER.",
  },
  // provider
  {
    name: "PROVIDER",
    group: "provider",
    schema: z.enum(PROVIDERS, { error: `expected one of ${PROVIDERS.join(", ")}` }),
    default: "local",
    description:
      "Where workers start: `local` = on the pool's head node (one worker pool per block, started over SSH); `slurm` = Slurm jobs submitted with sbatch on the head node; `pbspro` = PBS Pro jobs submitted with qsub.",
  },
  {
    name: "PARTITION",
    group: "provider",
    providers: ["slurm"],
    schema: text("a Slurm partition"),
    example: "compute",
    description: "Slurm partition (#SBATCH --partition).",
  },
  {
    name: "QUEUE",
    group: "provider",
    providers: ["pbspro"],
    schema: text("a PBS queue"),
    example: "workq",
    description: "PBS Pro queue (#PBS -q).",
  },
  {
    name: "ACCOUNT",
    group: "provider",
    providers: ["slurm", "pbspro"],
    schema: text("an account"),
    description: "Account (allocation) the jobs are charged to.",
  },
  {
    name: "QOS",
    group: "provider",
    providers: ["slurm"],
    schema: text("a QOS"),
    description: "Slurm quality of service (#SBATCH --qos).",
  },
  {
    name: "CONSTRAINT",
    group: "provider",
    providers: ["slurm"],
    schema: text("a node constraint"),
    description: "Slurm node features (#SBATCH --constraint).",
  },
  {
    name: "CLUSTERS",
    group: "provider",
    providers: ["slurm"],
    schema: text("cluster names"),
    description:
      "Slurm federation clusters (#SBATCH --clusters; also passed to squeue/sacct/scancel).",
  },
  {
    name: "NODES_PER_BLOCK",
    group: "provider",
    schema: pos("1"),
    default: "1",
    description:
      "Nodes in each block (one scheduler job, or one worker pool on the head node for PROVIDER local).",
  },
  {
    name: "CORES_PER_NODE",
    group: "provider",
    providers: ["slurm"],
    schema: pos("32"),
    description: "Cores to request per node (#SBATCH --cpus-per-task); also caps workers per node.",
  },
  {
    name: "CPUS_PER_NODE",
    group: "provider",
    providers: ["pbspro"],
    schema: pos("32"),
    default: "1",
    description: "PBS Pro ncpus per node (select=...:ncpus=N).",
  },
  {
    name: "SELECT_OPTIONS",
    group: "provider",
    providers: ["pbspro"],
    schema: z.string(),
    description: "Extra PBS Pro select options, e.g. `ngpus=1`.",
  },
  {
    name: "MEM_PER_NODE",
    group: "provider",
    providers: ["slurm"],
    schema: pos("64"),
    description:
      "Memory per node in GB (#SBATCH --mem=<N>g); also caps workers per node with MEM_PER_WORKER.",
  },
  {
    name: "GPUS_PER_NODE",
    group: "provider",
    providers: ["slurm"],
    schema: pos("4"),
    description: "GPUs per node (#SBATCH --gpus-per-node).",
  },
  {
    name: "GRES",
    group: "provider",
    providers: ["slurm"],
    schema: text("a gres spec"),
    example: "gpu:2",
    description: "Generic resources (#SBATCH --gres).",
  },
  {
    name: "EXCLUSIVE",
    group: "provider",
    providers: ["slurm"],
    schema: boolish(),
    default: "true (as Parsl)",
    description: "Request whole nodes (#SBATCH --exclusive).",
  },
  {
    name: "WALLTIME",
    group: "provider",
    providers: ["slurm", "pbspro"],
    schema: walltime(),
    default: "00:10:00 (slurm), 00:20:00 (pbspro)",
    example: "01:00:00",
    description: "Wall time of each block, HH:MM:SS.",
  },
  {
    name: "INIT_BLOCKS",
    group: "provider",
    schema: nonneg("1"),
    default: "1",
    description: "Blocks started when the workflow starts.",
  },
  {
    name: "MIN_BLOCKS",
    group: "provider",
    schema: nonneg("0"),
    default: "0",
    description: "Blocks kept even when idle.",
  },
  {
    name: "MAX_BLOCKS",
    group: "provider",
    schema: pos("4"),
    default: "1",
    description: "Most blocks at once (Parsl scales out up to this when tasks wait).",
  },
  {
    name: "PARALLELISM",
    group: "provider",
    schema: numeric({ min: 0, max: 1, example: "1" }),
    default: "1",
    description: "Ratio of task slots to waiting tasks Parsl aims for when scaling (0-1).",
  },
  {
    name: "SCHEDULER_OPTIONS",
    group: "provider",
    providers: ["slurm", "pbspro"],
    schema: z.string(),
    example: "#SBATCH --gpus=1",
    description:
      "Extra lines for the submit script header (#SBATCH ... / #PBS ...), newline separated.",
  },
  {
    name: "LAUNCHER",
    group: "provider",
    schema: z.enum(LAUNCHERS, { error: `expected one of ${LAUNCHERS.join(", ")}` }),
    default: "single_node",
    description:
      "How a block starts its worker pools on its nodes: `single_node` (Parsl's SingleNodeLauncher), `srun`, `simple`, `mpiexec`, `aprun`, `jsrun`, `gnu_parallel`.",
  },
  {
    name: "CMD_TIMEOUT",
    group: "provider",
    schema: pos("30"),
    default: "30",
    description:
      "Seconds to wait for a scheduler command (sbatch, squeue, qsub...) on the head node.",
  },
  // workers
  {
    name: "RUN_DIR",
    group: "workers",
    schema: remotePath(),
    example: "/home/me/parsl",
    default: "~/parsl-sidecar",
    description:
      "Working directory on the pool: worker certificates (mode 0700), submit scripts and block output go under it. Must be writable by the SSH user (checked by the preflight).",
  },
  {
    name: "WORKER_LOGDIR_ROOT",
    group: "workers",
    schema: remotePath(),
    default: "RUN_DIR",
    description:
      "Directory on the pool (and its compute nodes) where workers write their logs (<root>/<label>/block-N/...).",
  },
  {
    name: "SSH_CHANNEL_SCRIPT_DIR",
    group: "workers",
    schema: remotePath(),
    default: "RUN_DIR/submit_scripts",
    description:
      "Directory on the pool for submit scripts and their stdout/stderr (the name is kept from the old SSH channel).",
  },
  {
    name: "CORES_PER_WORKER",
    group: "workers",
    schema: numeric({ min: 0, exclusiveMin: true, example: "4" }),
    default: "1",
    description:
      "Cores each worker uses; a node runs cores / CORES_PER_WORKER workers (capped by MAX_WORKERS_PER_NODE).",
  },
  {
    name: "MAX_WORKERS_PER_NODE",
    group: "workers",
    schema: pos("8"),
    description: "Most workers on one node.",
  },
  {
    name: "MEM_PER_WORKER",
    group: "workers",
    schema: numeric({ min: 0, exclusiveMin: true, example: "2" }),
    description: "GB of memory each worker needs (with MEM_PER_NODE this caps workers per node).",
  },
  {
    name: "PREFETCH_CAPACITY",
    group: "workers",
    schema: nonneg("4"),
    default: "0 (as Parsl)",
    description:
      "Tasks a worker pool may take beyond its idle workers; hides the tunnel's round trip for many short tasks, at the cost of load balancing for long ones.",
  },
  {
    name: "PYTHON",
    group: "workers",
    schema: text("an interpreter path"),
    example: "/home/me/miniconda3/envs/parsl/bin/python",
    default:
      "CONDA_DIR/envs/CONDA_ENV/bin/python when both are set, else python3 on PATH after WORKER_INIT",
    description:
      "Python on the pool that runs the workers. Its minor version and its Parsl version must equal this machine's (the preflight checks).",
  },
  {
    name: "WORKER_INIT",
    group: "workers",
    schema: z.string(),
    example: "module load python/3.11",
    description:
      "Shell commands run before the worker pool starts (on the head node for PROVIDER local, in the job script otherwise).",
  },
  {
    name: "WORKER_DEBUG",
    group: "workers",
    schema: boolish(),
    default: "false",
    description: "Verbose worker logs.",
  },
  {
    name: "HEARTBEAT_PERIOD",
    group: "workers",
    schema: pos("30"),
    default: "30",
    description: "Seconds between heartbeats of workers and interchange.",
  },
  {
    name: "HEARTBEAT_THRESHOLD",
    group: "workers",
    schema: pos("120"),
    default: "120",
    description:
      "Seconds without heartbeat after which a worker or the interchange gives up on the other.",
  },
  // environment
  {
    name: "CONDA_ENV",
    group: "environment",
    schema: text("a conda environment name"),
    example: "parsl_py311",
    description: "Conda environment of the workers on the pool.",
  },
  {
    name: "CONDA_DIR",
    group: "environment",
    schema: remotePath(),
    example: "/contrib/me/miniconda3",
    description: "Conda installation on the pool.",
  },
  {
    name: "INSTALL_CONDA",
    group: "environment",
    schema: boolish(),
    default: "false",
    description:
      "Install conda in CONDA_DIR (and the environment from LOCAL_CONDA_YAML) when missing.",
  },
  {
    name: "LOCAL_CONDA_YAML",
    group: "environment",
    schema: text("a local file path"),
    example: "./requirements/conda_env.yaml",
    description: "Conda environment file on this machine that defines CONDA_ENV on the pool.",
  },
  {
    name: "SINGULARITY_CONTAINER_PATH",
    group: "environment",
    schema: remotePath(),
    description: "Singularity/Apptainer image on the pool.",
  },
  {
    name: "CREATE_SINGULARITY_CONTAINER",
    group: "environment",
    schema: boolish(),
    default: "false",
    description:
      "Build SINGULARITY_CONTAINER_PATH on the pool from LOCAL_SINGULARITY_FILE when it does not exist.",
  },
  {
    name: "LOCAL_SINGULARITY_FILE",
    group: "environment",
    schema: text("a local file path"),
    description: "Singularity definition file on this machine.",
  },
  // completed
  {
    name: "HOST_IP",
    group: "completed",
    schema: text("an address"),
    description: "Address of the pool's head node (from ~/.ssh/config, DNS or the RESOLVER).",
  },
  {
    name: "HOST_USER",
    group: "completed",
    schema: text("a user name"),
    description: "User on the pool's head node.",
  },
  {
    name: "INTERCHANGE_PORT",
    group: "completed",
    schema: port(),
    description:
      "Port on this machine the interchange binds (on 127.0.0.1 only); the tunnel carries workers to it.",
  },
  {
    name: "WORKER_PORT",
    group: "completed",
    schema: port(),
    description:
      "Port on the pool that workers dial (the tunnel's pool end, or the relay's); can differ from INTERCHANGE_PORT.",
  },
  {
    name: "DIAL_ADDRESS",
    group: "completed",
    schema: text("an IP address, or several separated by commas"),
    description:
      "Address on the pool that workers dial: the head node's loopback for PROVIDER local; for compute nodes the head node's addresses where the relay listens (comma separated: Parsl's worker uses the first that answers).",
  },
  {
    name: "TUNNEL_ID",
    group: "completed",
    schema: text("a tunnel id"),
    description:
      "Id of the sidecar tunnel that carries this executor's workers (`parsl-sidecar tunnels list`).",
  },
  {
    name: "WORKER_PORT_1",
    group: "completed",
    schema: port(),
    deprecated:
      "Parsl has one worker port since 2025.06.30; completion fills WORKER_PORT and INTERCHANGE_PORT",
    description: "Old first worker port (ignored).",
  },
  {
    name: "WORKER_PORT_2",
    group: "completed",
    schema: port(),
    deprecated:
      "Parsl has one worker port since 2025.06.30; completion fills WORKER_PORT and INTERCHANGE_PORT",
    description: "Old second worker port (ignored).",
  },
];

export const KEY_NAMES: ReadonlySet<string> = new Set(KEYS.map((k) => k.name));

export function keySpec(name: string): KeySpec | undefined {
  return KEYS.find((k) => k.name === name);
}

/** Keys completion writes, in the order it writes them. */
export const COMPLETED_KEYS = [
  "HOST_IP",
  "HOST_USER",
  "INTERCHANGE_PORT",
  "WORKER_PORT",
  "DIAL_ADDRESS",
  "TUNNEL_ID",
] as const;
