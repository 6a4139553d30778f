/** The `env.*` RPC params (snake_case, zod) and how they become an EnvSpec; shared by the RPC and the CLI. */
import { resolve } from "node:path";
import { z } from "zod";
import { SidecarError } from "../errors.js";
import { readLocalConf } from "./local-conf.js";
import { baseDirOf, containerFromKeys, specFromKeys, type ContainerSpec, type EnvSpec } from "./spec.js";

const path = z.string().min(1);

export const containerParams = z
  .object({
    create: z.boolean().default(false),
    path: path.describe("image path on the host (SINGULARITY_CONTAINER_PATH)"),
    file: path.optional().describe("definition file on the sidecar's machine (LOCAL_SINGULARITY_FILE)"),
    sudo: z.boolean().optional(),
    build_args: z.array(z.string()).optional(),
  })
  .strict();

export const specParams = {
  target: z.string().min(1).default("local").describe("`local` or an SSH target (user@host[:port] or a ~/.ssh/config alias)"),
  conf: path.optional().describe("a local.conf on the sidecar's machine (CONDA_ENV, CONDA_DIR, INSTALL_CONDA, LOCAL_CONDA_YAML, ...)"),
  keys: z.record(z.string(), z.unknown()).optional().describe("the same keys as an object (an executors.json entry); relative files resolve against `base_dir`"),
  base_dir: path.optional().describe("directory that relative files in `keys` are resolved against (default: the sidecar's cwd)"),
  backend: z.enum(["conda", "uv"]).optional(),
  name: z.string().min(1).optional().describe("environment name (CONDA_ENV)"),
  prefix: path.optional().describe("environment directory on the host"),
  file: path.optional().describe("conda YAML, requirements.txt or pyproject.toml on the sidecar's machine"),
  conda_dir: path.optional(),
  install_conda: z.boolean().optional(),
  installer_url: z.string().url().optional(),
  installer_file: path.optional(),
  installer_sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "64 hex digits").optional(),
  uv: path.optional().describe("uv on the host"),
  install_uv: z.boolean().optional(),
  python: z.string().min(1).optional().describe("interpreter or version for `uv venv`"),
  system_site_packages: z.boolean().optional(),
  find_links: z.array(z.string().min(1)).optional(),
  no_index: z.boolean().optional(),
  index_url: z.string().min(1).optional(),
  container: containerParams.optional(),
  host_env: z.record(z.string(), z.string()).optional().describe("extra environment for commands on the host"),
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

/** Turn params into a spec (local.conf / keys first, explicit fields over them). */
export function specFromParams(p: SpecParams, cwd = process.cwd()): { spec: EnvSpec | undefined; container: ContainerSpec | undefined } {
  let keys: Record<string, unknown> = {};
  let baseDir = p.base_dir ?? cwd;
  if (p.conf) {
    keys = readLocalConf(p.conf);
    baseDir = baseDirOf(p.conf);
  }
  if (p.keys) keys = { ...keys, ...p.keys };
  const over: Record<string, unknown> = {};
  if (p.backend) over.ENV_BACKEND = p.backend;
  if (p.file) {
    const file = resolve(cwd, p.file);
    if (p.backend === "uv" || (p.backend === undefined && /\.(txt|in|toml)$/.test(p.file))) over.LOCAL_REQUIREMENTS = file;
    else over.LOCAL_CONDA_YAML = file;
    if (p.backend === undefined) over.ENV_BACKEND = over.LOCAL_REQUIREMENTS ? "uv" : "conda";
  }
  const spec = specFromKeys({ ...keys, ...over }, baseDir);
  if (spec) {
    const set = <K extends keyof EnvSpec>(k: K, v: EnvSpec[K] | undefined): void => {
      if (v !== undefined) spec![k] = v;
    };
    set("name", p.name);
    if (p.installer_file) p = { ...p, installer_file: resolve(cwd, p.installer_file) };
    set("prefix", p.prefix);
    set("condaDir", p.conda_dir?.replace(/\/+$/, ""));
    set("installConda", p.install_conda);
    if (p.installer_url || p.installer_file || p.installer_sha256) {
      spec.installer = { ...(spec.installer ?? {}), ...(p.installer_url ? { url: p.installer_url } : {}), ...(p.installer_file ? { file: p.installer_file } : {}), ...(p.installer_sha256 ? { sha256: p.installer_sha256 } : {}) };
    }
    set("uv", p.uv);
    set("installUv", p.install_uv);
    set("python", p.python);
    set("systemSitePackages", p.system_site_packages);
    set("findLinks", p.find_links);
    set("noIndex", p.no_index);
    set("indexUrl", p.index_url);
  } else if (p.name || p.prefix || p.backend) {
    throw new SidecarError("ENV_INVALID", "No environment file: give `file` (a conda YAML, requirements.txt or pyproject.toml), LOCAL_CONDA_YAML or LOCAL_REQUIREMENTS", {});
  }
  let container = containerFromKeys(keys, baseDir);
  if (p.container) {
    container = { create: p.container.create, path: p.container.path };
    if (p.container.file) container.file = p.container.file;
    if (p.container.sudo !== undefined) container.sudo = p.container.sudo;
    if (p.container.build_args) container.buildArgs = p.container.build_args;
  }
  if (!spec && !container) throw new SidecarError("ENV_INVALID", "Nothing to ensure: give an environment file (`file`, or `conf` / `keys` with LOCAL_CONDA_YAML or LOCAL_REQUIREMENTS) or a container", {});
  return { spec, container };
}
