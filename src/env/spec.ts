/** What an environment is: the spec that `env ensure` makes true on a host, and its checks. */
import { dirname, isAbsolute, resolve } from "node:path";
import { SidecarError } from "../errors.js";

export type Backend = "conda" | "uv";

/** Where a conda installer comes from; `sha256` is checked before it runs. */
export interface InstallerSpec {
  /** https URL of a Miniforge/Miniconda installer (default: Miniforge's latest for the host) */
  url?: string;
  /** a local installer file, copied to the host */
  file?: string;
  /** expected SHA-256 (hex); default for a URL: the `<url>.sha256` file published beside it */
  sha256?: string;
}

/** A Singularity/Apptainer image to build on the host when it is missing. */
export interface ContainerSpec {
  create: boolean;
  /** image path on the host (SINGULARITY_CONTAINER_PATH) */
  path: string;
  /** definition file on this machine (LOCAL_SINGULARITY_FILE) */
  file?: string;
  /** run the build with sudo (the old scripts did) @default false */
  sudo?: boolean;
  /** extra `build` arguments, e.g. ["--fakeroot"] */
  buildArgs?: string[];
}

export interface EnvSpec {
  backend: Backend;
  /** environment name (CONDA_ENV); for uv the default prefix is ~/.parsl-sidecar/envs/<name> */
  name?: string;
  /** the environment's directory on the host (absolute or ~/...) */
  prefix?: string;
  /** this machine's spec file: conda YAML, or requirements.txt / pyproject.toml for uv */
  file: string;
  /**
   * Parsl release the environment must hold (`parsl==X`): a pool's gets this machine's, since
   * Parsl's interchange refuses workers of another release (service.ts)
   */
  parsl?: string;
  // conda
  condaDir?: string;
  installConda?: boolean;
  installer?: InstallerSpec;
  // uv
  /** path of uv on the host (default: uv on PATH, then the bootstrap venv) */
  uv?: string;
  /** `pip install uv` into ~/.cache/parsl-sidecar/uv when no uv is found @default false */
  installUv?: boolean;
  /** interpreter (path or version such as 3.11) for `uv venv` @default python3 on the host's PATH */
  python?: string;
  systemSitePackages?: boolean;
  /** directories or URLs on the host given to `--find-links` */
  findLinks?: string[];
  noIndex?: boolean;
  indexUrl?: string;
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$/;

/** Check a spec's names and paths; throws ENV_INVALID naming the bad value. */
export function checkSpec(spec: EnvSpec): void {
  if (spec.name !== undefined && !NAME_RE.test(spec.name)) {
    throw new SidecarError(
      "ENV_INVALID",
      `Invalid environment name \`${spec.name}\`: use letters, digits, \`_\`, \`.\`, \`+\` and \`-\` only (no \`/\`, spaces or \`:\`); to put the environment at a path, give a prefix instead`,
      { data: { name: spec.name } },
    );
  }
  if (spec.name === "base")
    throw new SidecarError(
      "ENV_INVALID",
      "Refusing to ensure the conda `base` environment from a file; name a separate environment (CONDA_ENV)",
      { data: { name: spec.name } },
    );
  for (const [field, p] of [
    ["prefix", spec.prefix],
    ["condaDir", spec.condaDir],
    ["uv", spec.uv],
  ] as const) {
    if (p === undefined) continue;
    if (
      !(p.startsWith("/") || p === "~" || p.startsWith("~/")) ||
      /[\0\n]/.test(p) ||
      p.length > 4096
    ) {
      throw new SidecarError(
        "ENV_INVALID",
        `Expected \`${field}\` to be an absolute path on the host (or ~/...), got \`${p}\``,
        { data: { [field]: p } },
      );
    }
  }
  if (spec.name === undefined && spec.prefix === undefined) {
    throw new SidecarError(
      "ENV_INVALID",
      "The environment needs a name (CONDA_ENV) or a prefix",
      {},
    );
  }
  if (spec.installer?.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(spec.installer.sha256)) {
    throw new SidecarError(
      "ENV_INVALID",
      `Expected the installer's sha256 to be 64 hex digits, got \`${spec.installer.sha256}\``,
      {},
    );
  }
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = String(v).trim();
  return s === "" ? undefined : s;
}

/** true/false/yes/no/1/0 (any case); undefined when absent. */
export function boolKey(v: unknown, key: string): boolean | undefined {
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v === "boolean") return v;
  const s = String(v).trim().toLowerCase();
  if (["true", "yes", "1", "on"].includes(s)) return true;
  if (["false", "no", "0", "off"].includes(s)) return false;
  throw new SidecarError(
    "ENV_INVALID",
    `Expected \`${key}\` to be true or false, got \`${String(v)}\``,
    { data: { key } },
  );
}

/**
 * Build a spec from local.conf / executors.json keys: CONDA_ENV, CONDA_DIR, INSTALL_CONDA,
 * LOCAL_CONDA_YAML, and for uv ENV_BACKEND=uv, LOCAL_REQUIREMENTS, UV_PYTHON, UV_PATH,
 * INSTALL_UV; ENV_PREFIX and CONDA_INSTALLER_URL/_FILE/_SHA256 for both. Local files are
 * resolved against `baseDir` (the directory of the file the keys came from).
 */
export function specFromKeys(keys: Record<string, unknown>, baseDir: string): EnvSpec | undefined {
  const local = (p: string | undefined): string | undefined =>
    p === undefined ? undefined : isAbsolute(p) ? p : resolve(baseDir, p);
  const yaml = local(str(keys.LOCAL_CONDA_YAML));
  const reqs = local(str(keys.LOCAL_REQUIREMENTS));
  const explicit = str(keys.ENV_BACKEND);
  if (explicit !== undefined && explicit !== "conda" && explicit !== "uv") {
    throw new SidecarError(
      "ENV_INVALID",
      `Expected \`ENV_BACKEND\` to be conda or uv, got \`${explicit}\``,
      {},
    );
  }
  const backend: Backend | undefined =
    (explicit as Backend | undefined) ?? (yaml ? "conda" : reqs ? "uv" : undefined);
  if (backend === undefined) return undefined;
  const file = backend === "conda" ? yaml : reqs;
  if (file === undefined) {
    throw new SidecarError(
      "ENV_INVALID",
      backend === "conda"
        ? "ENV_BACKEND is conda but LOCAL_CONDA_YAML is not set"
        : "ENV_BACKEND is uv but LOCAL_REQUIREMENTS is not set",
      {},
    );
  }
  const spec: EnvSpec = { backend, file };
  const set = <K extends keyof EnvSpec>(k: K, v: EnvSpec[K] | undefined): void => {
    if (v !== undefined) spec[k] = v;
  };
  set("name", str(keys.CONDA_ENV) ?? str(keys.ENV_NAME));
  set("prefix", str(keys.ENV_PREFIX));
  set("condaDir", str(keys.CONDA_DIR)?.replace(/\/+$/, ""));
  set("installConda", boolKey(keys.INSTALL_CONDA, "INSTALL_CONDA"));
  const installer: InstallerSpec = {};
  if (str(keys.CONDA_INSTALLER_URL)) installer.url = str(keys.CONDA_INSTALLER_URL)!;
  if (str(keys.CONDA_INSTALLER_FILE)) installer.file = local(str(keys.CONDA_INSTALLER_FILE))!;
  if (str(keys.CONDA_INSTALLER_SHA256)) installer.sha256 = str(keys.CONDA_INSTALLER_SHA256)!;
  if (Object.keys(installer).length > 0) spec.installer = installer;
  set("uv", str(keys.UV_PATH));
  set("installUv", boolKey(keys.INSTALL_UV, "INSTALL_UV"));
  set("python", str(keys.UV_PYTHON));
  return spec;
}

/** The container part of the same keys (CREATE_SINGULARITY_CONTAINER, ...), if any. */
export function containerFromKeys(
  keys: Record<string, unknown>,
  baseDir: string,
): ContainerSpec | undefined {
  const path = str(keys.SINGULARITY_CONTAINER_PATH);
  const create =
    boolKey(keys.CREATE_SINGULARITY_CONTAINER, "CREATE_SINGULARITY_CONTAINER") ?? false;
  if (path === undefined) {
    if (create)
      throw new SidecarError(
        "ENV_INVALID",
        "CREATE_SINGULARITY_CONTAINER is true but SINGULARITY_CONTAINER_PATH is not set",
        {},
      );
    return undefined;
  }
  const file = str(keys.LOCAL_SINGULARITY_FILE);
  const spec: ContainerSpec = { create, path };
  if (file !== undefined) spec.file = isAbsolute(file) ? file : resolve(baseDir, file);
  return spec;
}

/** Directory that relative paths in a keys file are resolved against. */
export function baseDirOf(file: string): string {
  return dirname(resolve(file));
}
