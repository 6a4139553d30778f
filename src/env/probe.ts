/**
 * One round trip that tells what a host has: the environment's prefix and state, the record of
 * the last successful ensure, the interpreter's Python and Parsl versions, and the tools found
 * (conda/mamba/micromamba, uv, python3, flock). The unchanged case needs nothing more. The
 * program is src/remote/env/probe.sh, which runs src/remote/env/versions.py with the interpreter.
 */
import { SidecarError } from "../errors.js";
import type { Host } from "../ssh/host.js";
import { type ProgramArg, programText, shCommand } from "../remote/index.js";
import { pathWord, tail } from "./host-shell.js";
import type { Backend } from "./spec.js";

export interface Versions {
  python: string;
  parsl: string | null;
  executable: string;
}

/** What the last successful ensure wrote into the environment. */
export interface EnvRecord {
  hash: string;
  backend: Backend;
  file: string;
  ensured_at: string;
  tool?: string;
  python?: string | null;
  parsl?: string | null;
  sidecar_version?: string;
}

export type PrefixState = "missing" | "empty" | "conda" | "venv" | "other";

export interface ProbeInput {
  backend: Backend;
  name?: string;
  prefix?: string;
  condaDir?: string;
  uv?: string;
  uvBootstrapDir: string;
  recordPath: string;
}

export interface ProbeResult {
  home: string;
  hostname: string;
  uname: string;
  path: string;
  /** the environment's directory, when it can be known without running conda */
  prefix?: string;
  prefixState?: PrefixState;
  record?: EnvRecord;
  versions?: Versions;
  versionsError?: string;
  condaDir?: string;
  condaDirExists: boolean;
  /** conda/mamba/micromamba inside CONDA_DIR */
  condaDirTool?: string;
  /** conda/mamba/micromamba on PATH */
  pathTool?: string;
  uv?: string;
  python3?: string;
  flock: boolean;
  activateScripts: string[];
}

/** The probe's command line (remote/env/probe.sh; the versions it prints from env/versions.py). */
function probeCommand(inp: ProbeInput): string {
  // `~` in a path expands on the host: a shell word, not a quoted value
  const v = (s: string | undefined): ProgramArg => (s === undefined ? "" : { shell: pathWord(s) });
  return shCommand("env/probe.sh", [
    inp.backend,
    inp.name ?? "",
    v(inp.prefix),
    v(inp.condaDir),
    v(inp.uv),
    v(inp.uvBootstrapDir),
    inp.recordPath,
    programText("env/versions.py"),
  ]);
}

/** Parse `key=value` lines (repeated keys collect into arrays via `all`). */
export function parseLines(text: string): { one: Map<string, string>; all: Map<string, string[]> } {
  const one = new Map<string, string>();
  const all = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i <= 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (!/^[a-z_0-9]+$/.test(k)) continue;
    one.set(k, v);
    all.set(k, [...(all.get(k) ?? []), v]);
  }
  return { one, all };
}

function json<T>(s: string | undefined): T | undefined {
  if (s === undefined) return undefined;
  try {
    return JSON.parse(s) as T;
  } catch {
    return undefined;
  }
}

/** Run the probe on `host`. */
export async function probe(
  host: Host,
  inp: ProbeInput,
  env?: Record<string, string>,
): Promise<ProbeResult> {
  const res = await host.exec(
    probeCommand(inp),
    env ? { env, timeoutMs: 60_000 } : { timeoutMs: 60_000 },
  );
  if (res.exitCode !== 0) {
    throw new SidecarError(
      "ENV_FAILED",
      `Looking at ${host.target} failed (exit ${res.exitCode}${res.signal ? `, ${res.signal}` : ""}): ${tail(res.stderr || res.stdout, 5)}`,
      { data: { target: host.target } },
    );
  }
  const { one, all } = parseLines(res.stdout);
  const g = (k: string): string | undefined => one.get(k) || undefined;
  const out: ProbeResult = {
    home: g("home") ?? "",
    hostname: g("hostname") ?? "",
    uname: g("uname") ?? "",
    path: g("path") ?? "",
    condaDirExists: one.get("conda_dir_exists") === "1",
    flock: one.get("flock") === "1",
    activateScripts: all.get("activate_script") ?? [],
  };
  const opt: Array<[keyof ProbeResult, string]> = [
    ["prefix", "prefix"],
    ["condaDir", "conda_dir"],
    ["condaDirTool", "conda_dir_tool"],
    ["pathTool", "path_tool"],
    ["uv", "uv"],
    ["python3", "python3"],
    ["versionsError", "versions_error"],
  ];
  for (const [field, key] of opt)
    if (g(key) !== undefined) (out as unknown as Record<string, unknown>)[field] = g(key);
  const state = g("prefix_state");
  if (state) out.prefixState = state as PrefixState;
  const record = json<EnvRecord>(g("record"));
  if (record && typeof record.hash === "string") out.record = record;
  const versions = json<Versions>(g("versions"));
  if (versions && typeof versions.python === "string") out.versions = versions;
  else if (g("versions") !== undefined) out.versionsError = g("versions");
  return out;
}
