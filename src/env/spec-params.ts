/** How env params (RPC or CLI) become an EnvSpec: local.conf / keys first, explicit fields over them. No zod here (CLI start-up). */
import { resolve } from "node:path";
import { SidecarError } from "../errors.js";
import { readLocalConf } from "./local-conf.js";
import type { SpecParams } from "./params.js";
import {
  baseDirOf,
  containerFromKeys,
  specFromKeys,
  type ContainerSpec,
  type EnvSpec,
} from "./spec.js";

export type { SpecParams };

/** Turn params into a spec (local.conf / keys first, explicit fields over them). */
export function specFromParams(
  p: SpecParams,
  cwd = process.cwd(),
): { spec: EnvSpec | undefined; container: ContainerSpec | undefined } {
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
    if (p.backend === "uv" || (p.backend === undefined && /\.(txt|in|toml)$/.test(p.file)))
      over.LOCAL_REQUIREMENTS = file;
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
      spec.installer = {
        ...(spec.installer ?? {}),
        ...(p.installer_url ? { url: p.installer_url } : {}),
        ...(p.installer_file ? { file: p.installer_file } : {}),
        ...(p.installer_sha256 ? { sha256: p.installer_sha256 } : {}),
      };
    }
    set("uv", p.uv);
    set("installUv", p.install_uv);
    set("python", p.python);
    set("systemSitePackages", p.system_site_packages);
    set("findLinks", p.find_links);
    set("noIndex", p.no_index);
    set("indexUrl", p.index_url);
    if (p.parsl !== undefined && p.parsl !== "none") spec.parsl = p.parsl;
  } else if (p.name || p.prefix || p.backend) {
    throw new SidecarError(
      "ENV_INVALID",
      "No environment file: give `file` (a conda YAML, requirements.txt or pyproject.toml), LOCAL_CONDA_YAML or LOCAL_REQUIREMENTS",
      {},
    );
  }
  let container = containerFromKeys(keys, baseDir);
  if (p.container) {
    container = { create: p.container.create, path: p.container.path };
    if (p.container.file) container.file = p.container.file;
    if (p.container.sudo !== undefined) container.sudo = p.container.sudo;
    if (p.container.build_args) container.buildArgs = p.container.build_args;
  }
  if (!spec && !container)
    throw new SidecarError(
      "ENV_INVALID",
      "No environment given: give an environment file (`file`, or `conf` / `keys` with LOCAL_CONDA_YAML or LOCAL_REQUIREMENTS) or a container",
      {},
    );
  return { spec, container };
}
