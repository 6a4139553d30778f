/**
 * Activation without `conda activate`: the variables an environment sets, its interpreter by
 * absolute path, and a worker_init line for a pool executor. A workflow started with these runs
 * the interpreter itself (no `conda run` wrapper), so signals sent to it reach Python.
 */
import { shellQuote } from "../ssh/host.js";
import type { Backend } from "./spec.js";

export interface Activation {
  backend: Backend;
  prefix: string;
  name: string | null;
  /** `<prefix>/bin/python` */
  interpreter: string;
  /** prepended to PATH, first wins */
  pathPrepend: string[];
  /** variables set as they are */
  set: Record<string, string>;
  /** variables removed (a stray PYTHONHOME breaks any env) */
  unset: string[];
  /** conda `etc/conda/activate.d/*.sh` scripts, sourced by worker_init */
  scripts: string[];
}

export interface ActivationInput {
  backend: Backend;
  prefix: string;
  name?: string | null;
  /** the conda executable used (CONDA_EXE) */
  condaExe?: string | null;
  scripts?: string[];
}

/** Compute the activation of an environment at `prefix`. */
export function activationFor(inp: ActivationInput): Activation {
  const bin = `${inp.prefix}/bin`;
  const set: Record<string, string> =
    inp.backend === "conda"
      ? { CONDA_PREFIX: inp.prefix, CONDA_DEFAULT_ENV: inp.name ?? inp.prefix, CONDA_SHLVL: "1" }
      : { VIRTUAL_ENV: inp.prefix };
  if (inp.backend === "conda" && inp.condaExe) set.CONDA_EXE = inp.condaExe;
  return {
    backend: inp.backend,
    prefix: inp.prefix,
    name: inp.name ?? null,
    interpreter: `${bin}/python`,
    pathPrepend: [bin],
    set,
    unset: ["PYTHONHOME"],
    scripts: inp.scripts ?? [],
  };
}

/**
 * The environment for a command run in the activated environment: `base` (default
 * process.env) with PATH prefixed and the variables set. Activate scripts are not run here; see
 * {@link workerInit} for a shell that sources them.
 */
export function commandEnv(
  act: Activation,
  base: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (v !== undefined) env[k] = v;
  for (const k of act.unset) delete env[k];
  // a venv left active in the caller's shell must not shadow ours
  if (act.backend === "conda") delete env.VIRTUAL_ENV;
  const rest = (env.PATH ?? "").split(":").filter((p) => p !== "" && !act.pathPrepend.includes(p));
  env.PATH = [...act.pathPrepend, ...rest].join(":");
  Object.assign(env, act.set);
  return env;
}

/** `python`/`python3` as the first word become the interpreter's absolute path; the rest stays. */
export function resolveCommand(argv: string[], act: Activation): string[] {
  if (argv.length === 0) return argv;
  const first = argv[0]!;
  if (first === "python" || first === "python3") return [act.interpreter, ...argv.slice(1)];
  return argv;
}

/**
 * Shell lines for an executor's worker_init: export the variables, put `<prefix>/bin` first on
 * PATH, source activate.d scripts if the environment has any.
 *
 * @example workerInit(act) // "export PATH='/opt/c/envs/p/bin':\"$PATH\"; export CONDA_PREFIX=..."
 */
export function workerInit(act: Activation): string {
  const parts = [`export PATH=${act.pathPrepend.map(shellQuote).join(":")}:"$PATH"`];
  for (const [k, v] of Object.entries(act.set)) parts.push(`export ${k}=${shellQuote(v)}`);
  for (const k of act.unset) parts.push(`unset ${k}`);
  for (const s of act.scripts) parts.push(`. ${shellQuote(s)}`);
  return parts.join("; ");
}
