/** The `env.*` RPC params (snake_case, zod schemas); spec-params.ts turns them into an EnvSpec. */
import { z } from "zod";

const path = z.string().min(1);

export const containerParams = z
  .object({
    create: z.boolean().default(false),
    path: path.describe("image path on the host (SINGULARITY_CONTAINER_PATH)"),
    file: path
      .optional()
      .describe("definition file on the sidecar's machine (LOCAL_SINGULARITY_FILE)"),
    sudo: z.boolean().optional(),
    build_args: z.array(z.string()).optional(),
  })
  .strict();

export const specParams = {
  target: z
    .string()
    .min(1)
    .default("local")
    .describe("`local` or an SSH target (user@host[:port] or a ~/.ssh/config alias)"),
  conf: path
    .optional()
    .describe(
      "a local.conf on the sidecar's machine (CONDA_ENV, CONDA_DIR, INSTALL_CONDA, LOCAL_CONDA_YAML, ...)",
    ),
  keys: z
    .record(z.string(), z.unknown())
    .optional()
    .describe(
      "the same keys as an object (an executors.json entry); relative files resolve against `base_dir`",
    ),
  base_dir: path
    .optional()
    .describe(
      "directory that relative files in `keys` are resolved against (default: the sidecar's cwd)",
    ),
  backend: z.enum(["conda", "uv"]).optional(),
  name: z.string().min(1).optional().describe("environment name (CONDA_ENV)"),
  prefix: path.optional().describe("environment directory on the host"),
  file: path
    .optional()
    .describe("conda YAML, requirements.txt or pyproject.toml on the sidecar's machine"),
  conda_dir: path.optional(),
  install_conda: z.boolean().optional(),
  installer_url: z.string().url().optional(),
  installer_file: path.optional(),
  installer_sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, "64 hex digits")
    .optional(),
  uv: path.optional().describe("uv on the host"),
  install_uv: z.boolean().optional(),
  python: z.string().min(1).optional().describe("interpreter or version for `uv venv`"),
  system_site_packages: z.boolean().optional(),
  find_links: z.array(z.string().min(1)).optional(),
  no_index: z.boolean().optional(),
  index_url: z.string().min(1).optional(),
  parsl: z
    .string()
    .regex(/^(none|[0-9][0-9A-Za-z.+!-]*)$/, "a Parsl version such as 2025.6.30, or none")
    .optional()
    .describe(
      "the Parsl release the environment must hold (`parsl==X` is installed with the file; a conda environment is checked); `none`: no pin. Default: for a pool, the Parsl of this machine's workflow Python ($PARSL_SIDECAR_PYTHON or python3), when it has one",
    ),
  container: containerParams.optional(),
  host_env: z
    .record(z.string(), z.string())
    .optional()
    .describe("extra environment for commands on the host"),
};

export const ensureParams = z
  .object({
    ...specParams,
    force: z.boolean().default(false).describe("rebuild even when the recorded hash matches"),
    lock_timeout_ms: z.number().int().positive().optional(),
  })
  .strict();

export const describeParams = z.object(specParams).strict();

export type SpecParams = z.output<typeof describeParams>;
