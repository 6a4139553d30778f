/** What the backends share during one ensure: the host, the spec, what the probe saw, progress. */
import type { Host } from "../ssh/host.js";
import type { LockOptions } from "./lock.js";
import type { ProbeResult } from "./probe.js";
import type { EnvSpec } from "./spec.js";
import type { LoadedSpecFile } from "./spec-file.js";
import type { ProgressFn } from "./step.js";

export type ToolKind = "conda" | "mamba" | "micromamba" | "uv";

export interface ToolInfo {
  kind: ToolKind;
  path: string;
  /** installed by this ensure */
  installed: boolean;
}

export interface BackendContext {
  host: Host;
  spec: EnvSpec;
  file: LoadedSpecFile;
  probe: ProbeResult;
  progress: ProgressFn;
  signal: AbortSignal | undefined;
  /** extra environment for every command on the host */
  hostEnv: Record<string, string> | undefined;
  lock: Omit<LockOptions, "onWait" | "env">;
  /** where downloads are cached on this machine */
  cacheDir: string | undefined;
  /** the held environment lock's watchdog, for the tool's process group (set during build) */
  watch?: { watch(pgid: number): void; unwatch(): void };
}

/** What a backend reports after making the environment match the file. */
export interface BuildOutcome {
  action: "created" | "updated";
}

export interface EnvBackend {
  /** the record's path inside the prefix */
  readonly recordPath: string;
  /** find (or install) the tool; may fill in the prefix when the probe could not know it */
  prepare(ctx: BackendContext): Promise<{ tool: ToolInfo; prefix: string }>;
  /** create or update the environment at `prefix` from `fileOnHost` */
  build(
    ctx: BackendContext,
    tool: ToolInfo,
    prefix: string,
    fileOnHost: string,
  ): Promise<BuildOutcome>;
}

/** Spell a tool's kind from its path. */
export function toolKind(path: string): ToolKind {
  const base = path.slice(path.lastIndexOf("/") + 1);
  if (base.startsWith("micromamba")) return "micromamba";
  if (base.startsWith("mamba")) return "mamba";
  if (base.startsWith("uv")) return "uv";
  return "conda";
}
