/**
 * `ensure`: make the environment on a host match the user's file. Unchanged (the recorded hash
 * equals the file's) costs one round trip; otherwise under the environment's lock: drop the old
 * record, create or update, read the versions, and only then record the new hash (temp + mv).
 */
import { SidecarError } from "../errors.js";
import type { Host } from "../ssh/host.js";
import { VERSION } from "../version.js";
import { activationFor, workerInit, type Activation } from "./activation.js";
import { sameParsl } from "./caller.js";
import { condaBackend } from "./conda.js";
import type { BackendContext, EnvBackend, ToolInfo } from "./context.js";
import { execChecked, hostTempDir, shellQuote, writeHostFile } from "./host-shell.js";
import { acquireLock, lockPathFor, type LockOptions } from "./lock.js";
import { probe, type EnvRecord, type ProbeInput, type ProbeResult } from "./probe.js";
import { checkSpec, type EnvSpec } from "./spec.js";
import { loadSpecFile, specHash } from "./spec-file.js";
import type { EnvProgress } from "./step.js";
import { UV_BOOTSTRAP_DIR, uvBackend } from "./uv.js";

export interface EnsureOptions {
  onProgress?: (p: EnvProgress) => void;
  /** abort: the running tool is stopped, nothing is recorded */
  signal?: AbortSignal;
  /** rebuild even when the hash matches */
  force?: boolean;
  /** extra environment for every command on the host */
  hostEnv?: Record<string, string>;
  lockTimeoutMs?: number;
  lockMechanism?: LockOptions["mechanism"];
  /** download cache on this machine @default ~/.cache/parsl-sidecar/installers */
  cacheDir?: string;
}

export interface EnsureResult {
  target: string;
  backend: EnvSpec["backend"];
  name: string | null;
  prefix: string;
  action: "created" | "updated" | "unchanged";
  hash: string;
  file: string;
  /** the tool used (null when unchanged: no tool ran) */
  tool: ToolInfo | null;
  python: string | null;
  parsl: string | null;
  interpreter: string;
  activation: Activation;
  workerInit: string;
  /** top-level YAML keys left out of the copy given to conda */
  dropped: string[];
  /** another ensure held the lock first */
  waited: boolean;
  durationMs: number;
}

export function backendFor(spec: EnvSpec): EnvBackend {
  return spec.backend === "conda" ? condaBackend : uvBackend;
}

/** Does the probe show an environment built from this hash? */
export function isCurrent(pr: ProbeResult, spec: EnvSpec, hash: string): boolean {
  if (!pr.record || pr.record.hash !== hash) return false;
  if (pr.prefixState !== (spec.backend === "conda" ? "conda" : "venv")) return false;
  // an environment whose interpreter no longer runs is not current (a conda env may have none)
  return (
    pr.versions !== undefined ||
    (spec.backend === "conda" && pr.record.python === null && pr.versionsError === undefined)
  );
}

export function probeInputFor(spec: EnvSpec, prefix?: string): ProbeInput {
  const inp: ProbeInput = {
    backend: spec.backend,
    recordPath: backendFor(spec).recordPath,
    uvBootstrapDir: UV_BOOTSTRAP_DIR,
  };
  if (spec.name !== undefined) inp.name = spec.name;
  if (prefix ?? spec.prefix) inp.prefix = (prefix ?? spec.prefix)!;
  if (spec.condaDir !== undefined) inp.condaDir = spec.condaDir;
  if (spec.uv !== undefined) inp.uv = spec.uv;
  return inp;
}

function resultOf(
  host: Host,
  spec: EnvSpec,
  pr: ProbeResult,
  extra: {
    action: EnsureResult["action"];
    hash: string;
    tool: ToolInfo | null;
    dropped: string[];
    waited: boolean;
    started: number;
    condaExe?: string;
  },
): EnsureResult {
  const prefix = pr.prefix!;
  const activation = activationFor({
    backend: spec.backend,
    prefix,
    name: spec.name ?? null,
    condaExe: extra.condaExe ?? null,
    scripts: pr.activateScripts,
  });
  return {
    target: host.target,
    backend: spec.backend,
    name: spec.name ?? null,
    prefix,
    action: extra.action,
    hash: extra.hash,
    file: spec.file,
    tool: extra.tool,
    python: pr.versions?.python ?? null,
    parsl: pr.versions?.parsl ?? null,
    interpreter: activation.interpreter,
    activation,
    workerInit: workerInit(activation),
    dropped: extra.dropped,
    waited: extra.waited,
    durationMs: Date.now() - extra.started,
  };
}

/** Make the environment of `spec` exist on `host` and match its file. */
export async function ensureEnv(
  host: Host,
  spec: EnvSpec,
  opts: EnsureOptions = {},
): Promise<EnsureResult> {
  const started = Date.now();
  checkSpec(spec);
  const file = await loadSpecFile(spec);
  const hash = specHash(spec, file.sha256);
  const backend = backendFor(spec);
  const label = spec.name ?? spec.prefix ?? "";
  const progress = (p: Omit<EnvProgress, "target" | "env">): void =>
    opts.onProgress?.({ target: host.target, env: label, ...p });
  const hostEnv = opts.hostEnv;
  let pr = await probe(host, probeInputFor(spec), hostEnv);
  const base = { hash, dropped: file.dropped, started };
  if (!opts.force && isCurrent(pr, spec, hash)) {
    progress({ phase: "done", message: `unchanged (${pr.prefix})` });
    return resultOf(host, spec, pr, {
      ...base,
      action: "unchanged",
      tool: null,
      waited: false,
      ...(pr.record?.tool ? { condaExe: pr.record.tool } : {}),
    });
  }
  const lockOpts: Omit<LockOptions, "onWait" | "env"> = {
    ...(opts.lockTimeoutMs !== undefined ? { timeoutMs: opts.lockTimeoutMs } : {}),
    ...(opts.lockMechanism ? { mechanism: opts.lockMechanism } : {}),
  };
  const ctx: BackendContext = {
    host,
    spec,
    file,
    probe: pr,
    progress,
    signal: opts.signal,
    hostEnv,
    lock: lockOpts,
    cacheDir: opts.cacheDir,
  };
  const { tool, prefix } = await backend.prepare(ctx);
  const parent = prefix.replace(/\/[^/]+\/?$/, "") || "/";
  const w = await host.exec(
    `mkdir -p ${shellQuote(parent)} 2>&1; [ -d ${shellQuote(parent)} ] && [ -w ${shellQuote(parent)} ] && echo writable; id -un`,
    hostEnv ? { env: hostEnv } : {},
  );
  if (!w.stdout.includes("writable")) {
    const user = w.stdout.trim().split("\n").pop();
    throw new SidecarError(
      "ENV_FAILED",
      `Cannot write to ${parent} on ${host.target} (as ${user}), where the environment ${prefix} goes${spec.condaDir ? ` (CONDA_DIR=${spec.condaDir})` : ""}. Choose a CONDA_DIR or prefix you can write to`,
      {
        data: { target: host.target, prefix, parent },
      },
    );
  }
  let waited = false;
  const lock = await acquireLock(host, lockPathFor(prefix), {
    ...lockOpts,
    ...(hostEnv ? { env: hostEnv } : {}),
    onWait: (owner) => {
      waited = true;
      progress({
        phase: "lock",
        message: `waiting for another ensure of ${prefix} (${owner || "unknown holder"})`,
      });
    },
  });
  let tmp: Awaited<ReturnType<typeof hostTempDir>> | undefined;
  try {
    pr = await probe(host, probeInputFor(spec, prefix), hostEnv);
    if (!opts.force && isCurrent(pr, spec, hash)) {
      progress({
        phase: "done",
        message: `unchanged (${prefix}, ensured meanwhile by another ensure)`,
      });
      return resultOf(host, spec, pr, {
        ...base,
        action: "unchanged",
        tool,
        waited,
        ...(spec.backend === "conda" ? { condaExe: tool.path } : {}),
      });
    }
    const recordPath = `${prefix}/${backend.recordPath}`;
    // from here until the new record is written the environment is not "done"
    await execChecked(
      host,
      `rm -f ${shellQuote(recordPath)}`,
      `Removing the old record ${recordPath}`,
    );
    tmp = await hostTempDir(host);
    const fileOnHost = `${tmp.path}/${file.copyName}`;
    await writeHostFile(host, fileOnHost, file.content);
    const outcome = await backend.build(
      { ...ctx, probe: pr, watch: lock },
      tool,
      prefix,
      fileOnHost,
    );
    pr = await probe(host, probeInputFor(spec, prefix), hostEnv);
    if (!pr.versions && (spec.backend === "uv" || pr.versionsError)) {
      throw new SidecarError(
        "ENV_FAILED",
        `The environment ${prefix} on ${host.target} was built but its interpreter does not run: ${pr.versionsError ?? "no bin/python"}`,
        { data: { target: host.target, prefix } },
      );
    }
    if (spec.parsl && !sameParsl(pr.versions?.parsl, spec.parsl)) {
      // uv installed the pin with the file; a conda environment takes Parsl from its YAML
      throw new SidecarError(
        "ENV_FAILED",
        `The environment ${prefix} on ${host.target} has Parsl ${pr.versions?.parsl ?? "not installed"}, but this machine runs Parsl ${spec.parsl} and Parsl's interchange refuses workers of another release. Put parsl==${spec.parsl} in ${spec.file}${spec.backend === "conda" ? " (under `- pip:` in its dependencies)" : ""}`,
        {
          data: { target: host.target, prefix, parsl: pr.versions?.parsl ?? null, pin: spec.parsl },
        },
      );
    }
    const record: EnvRecord = {
      hash,
      backend: spec.backend,
      file: spec.file,
      ensured_at: new Date().toISOString(),
      tool: tool.path,
      python: pr.versions?.python ?? null,
      parsl: pr.versions?.parsl ?? null,
      sidecar_version: VERSION,
    };
    await writeHostFile(host, recordPath, `${JSON.stringify(record)}\n`);
    pr.record = record;
    progress({
      phase: "done",
      message: `${outcome.action} ${prefix}: Python ${record.python ?? "none"}, Parsl ${record.parsl ?? "not installed"}`,
    });
    return resultOf(host, spec, pr, {
      ...base,
      action: outcome.action,
      tool,
      waited,
      ...(spec.backend === "conda" ? { condaExe: tool.path } : {}),
    });
  } finally {
    await tmp?.remove();
    await lock.release();
  }
}
