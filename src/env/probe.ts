/**
 * One round trip that tells what a host has: the environment's prefix and state, the record of
 * the last successful ensure, the interpreter's Python and Parsl versions, and the tools found
 * (conda/mamba/micromamba, uv, python3, flock). The unchanged case needs nothing more.
 */
import { SidecarError } from "../errors.js";
import type { Host } from "../ssh/host.js";
import { pathWord, shellQuote, tail } from "./host-shell.js";
import type { Backend } from "./spec.js";

/**
 * Prints one JSON line with the interpreter's versions. Parsl's version comes from its
 * dist-info directory on sys.path (fast: no import); importlib.metadata is the fallback.
 */
export const VERSIONS_PY = [
  "import sys, os",
  "p = None",
  "for d in sys.path:",
  "    try:",
  "        names = os.listdir(d or '.')",
  "    except OSError:",
  "        continue",
  "    for n in names:",
  "        low = n.lower()",
  "        if low.startswith('parsl-') and (low.endswith('.dist-info') or low.endswith('.egg-info')):",
  "            p = n[6:].rsplit('.', 1)[0].split('-')[0]",
  "            break",
  "    if p:",
  "        break",
  "if p is None:",
  "    try:",
  "        import importlib.metadata as m",
  "        p = m.version('parsl')",
  "    except Exception:",
  "        p = None",
  "e = sys.executable.replace('\\\\', '\\\\\\\\').replace('\"', '\\\\\"')",
  "q = '\"%s\"' % p if p else 'null'",
  'print(\'{"python": "%d.%d.%d", "parsl": %s, "executable": "%s"}\' % (sys.version_info[0], sys.version_info[1], sys.version_info[2], q, e))',
].join("\n");

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

function script(inp: ProbeInput): string {
  const v = (s: string | undefined): string => (s === undefined ? "''" : pathWord(s));
  return `
P_BACKEND=${shellQuote(inp.backend)}; P_NAME=${shellQuote(inp.name ?? "")}; P_PREFIX=${v(inp.prefix)}
P_CONDA_DIR=${v(inp.condaDir)}; P_UV=${v(inp.uv)}; P_UVBOOT=${v(inp.uvBootstrapDir)}; P_RECORD=${shellQuote(inp.recordPath)}
VPY=${shellQuote(VERSIONS_PY)}
say() { printf '%s=%s\\n' "$1" "$2" | tr -d '\\r'; }
say home "$HOME"; say hostname "$(hostname 2>/dev/null || uname -n)"; say uname "$(uname -sm 2>/dev/null)"; say path "$PATH"
command -v flock >/dev/null 2>&1 && say flock 1
PY3=$(command -v python3 2>/dev/null || command -v python 2>/dev/null) && [ -n "$PY3" ] && say python3 "$PY3"
PFX=""
if [ "$P_BACKEND" = conda ]; then
  if [ -n "$P_CONDA_DIR" ]; then
    say conda_dir "$P_CONDA_DIR"; [ -e "$P_CONDA_DIR" ] && say conda_dir_exists 1
    for c in bin/conda condabin/conda bin/mamba bin/micromamba; do [ -x "$P_CONDA_DIR/$c" ] && { say conda_dir_tool "$P_CONDA_DIR/$c"; break; }; done
  fi
  T=""
  for c in conda mamba micromamba; do T=$(command -v $c 2>/dev/null) && [ -n "$T" ] && case "$T" in /*) say path_tool "$T"; break;; esac; T=""; done
  if [ -n "$P_PREFIX" ]; then PFX="$P_PREFIX"
  elif [ -n "$P_CONDA_DIR" ]; then PFX="$P_CONDA_DIR/envs/$P_NAME"
  elif [ -n "$T" ]; then
    case "$T" in
      */micromamba) R="\${MAMBA_ROOT_PREFIX:-$HOME/micromamba}";;
      *) R=$(dirname "$(dirname "$(readlink -f "$T" 2>/dev/null || echo "$T")")");;
    esac
    if [ -w "$R/envs" ] || { [ ! -e "$R/envs" ] && [ -w "$R" ]; }; then PFX="$R/envs/$P_NAME"; else PFX="$HOME/.conda/envs/$P_NAME"; fi
  fi
else
  if [ -n "$P_UV" ]; then [ -x "$P_UV" ] && say uv "$P_UV"
  else
    U=$(command -v uv 2>/dev/null) && [ -n "$U" ] && say uv "$U" || { [ -x "$P_UVBOOT/bin/uv" ] && say uv "$P_UVBOOT/bin/uv"; }
  fi
  if [ -n "$P_PREFIX" ]; then PFX="$P_PREFIX"; else PFX="$HOME/.parsl-sidecar/envs/$P_NAME"; fi
fi
if [ -n "$PFX" ]; then
  say prefix "$PFX"
  if [ -d "$PFX/conda-meta" ]; then say prefix_state conda
  elif [ -f "$PFX/pyvenv.cfg" ]; then say prefix_state venv
  elif [ -d "$PFX" ] && [ -z "$(ls -A "$PFX" 2>/dev/null)" ]; then say prefix_state empty
  elif [ -e "$PFX" ]; then say prefix_state other
  else say prefix_state missing; fi
  [ -f "$PFX/$P_RECORD" ] && say record "$(head -c 65536 "$PFX/$P_RECORD" | tr -d '\\n')"
  if [ -x "$PFX/bin/python" ]; then
    O=$("$PFX/bin/python" -c "$VPY" 2>&1) && say versions "$(printf '%s\\n' "$O" | tail -n 1)" || say versions_error "$(printf '%s' "$O" | tail -n 3 | tr '\\n' ' ')"
  fi
  for f in "$PFX"/etc/conda/activate.d/*.sh; do [ -f "$f" ] && say activate_script "$f"; done
fi
exit 0
`;
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
    script(inp),
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
