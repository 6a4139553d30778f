/**
 * The conda backend: find conda/mamba/micromamba (CONDA_DIR first, then PATH), install
 * Miniforge when allowed, and `env create` / `env update` the environment by prefix from a copy
 * of the user's YAML, with --json so progress and errors can be read.
 */
import { SidecarError } from "../errors.js";
import { installConda } from "./conda-install.js";
import type { BackendContext, BuildOutcome, EnvBackend, ToolInfo } from "./context.js";
import { toolKind } from "./context.js";
import { shellQuote } from "./host-shell.js";
import { runStep } from "./step.js";

/** The command line that creates or updates `prefix` from `file` with `tool`. */
export function condaCommand(
  tool: ToolInfo,
  mode: "create" | "update",
  prefix: string,
  file: string,
): string[] {
  if (tool.kind === "micromamba")
    return [
      tool.path,
      mode === "create" ? "create" : "install",
      "-y",
      "-p",
      prefix,
      "-f",
      file,
      "--json",
    ];
  return [tool.path, "env", mode, "-p", prefix, "-f", file, "--json"];
}

/** conda --json prints NUL-separated progress objects, then a result or an error object. */
export function parseCondaRecord(r: string): { message: string; fraction?: number } | undefined {
  const t = r.trim();
  if (!t.startsWith("{")) return t === "" ? undefined : { message: t };
  try {
    const o = JSON.parse(t) as Record<string, unknown>;
    if (typeof o.fetch === "string") {
      const frac = typeof o.progress === "number" ? o.progress : undefined;
      return {
        message: `fetching ${o.fetch}${frac !== undefined ? ` ${Math.round(frac * 100)}%` : ""}`,
        ...(frac !== undefined ? { fraction: frac } : {}),
      };
    }
    if (o.success === true) return { message: "done" };
    if (typeof o.message === "string") return { message: o.message };
    return undefined;
  } catch {
    return { message: t };
  }
}

/** Pull conda's own error message out of --json output. */
export function explainConda(stdout: string, stderr: string): string | undefined {
  const records = `${stdout}\0${stderr}`.split(/\0|\n(?=\{)/);
  for (let i = records.length - 1; i >= 0; i--) {
    const t = records[i]!.trim();
    if (!t.startsWith("{")) continue;
    try {
      const o = JSON.parse(t) as Record<string, unknown>;
      const msg =
        (typeof o.message === "string" && o.message) || (typeof o.error === "string" && o.error);
      if (msg)
        return `${typeof o.exception_name === "string" ? `${o.exception_name}: ` : ""}${msg.trim()}`;
    } catch {
      // not a complete JSON object
    }
  }
  return undefined;
}

export const condaBackend: EnvBackend = {
  recordPath: "conda-meta/parsl-sidecar.json",

  async prepare(ctx: BackendContext): Promise<{ tool: ToolInfo; prefix: string }> {
    const { spec, probe, host } = ctx;
    const condaDir = spec.condaDir ? (probe.condaDir ?? spec.condaDir) : undefined;
    let tool: ToolInfo | undefined;
    if (probe.condaDirTool)
      tool = { kind: toolKind(probe.condaDirTool), path: probe.condaDirTool, installed: false };
    else if (condaDir) {
      if (!spec.installConda) {
        throw new SidecarError(
          "ENV_NOT_FOUND",
          `No conda in CONDA_DIR=${condaDir} on ${host.target} (looked for bin/conda, condabin/conda, bin/mamba, bin/micromamba). Set INSTALL_CONDA=true to install Miniforge there, or fix CONDA_DIR`,
          { data: { target: host.target, conda_dir: condaDir } },
        );
      }
      tool = await installConda(ctx, condaDir);
    } else if (probe.pathTool)
      tool = { kind: toolKind(probe.pathTool), path: probe.pathTool, installed: false };
    else if (spec.installConda) {
      tool = await installConda(ctx, `${probe.home}/miniforge3`);
    } else {
      throw new SidecarError(
        "ENV_NOT_FOUND",
        `No conda, mamba or micromamba on ${host.target} (PATH=${probe.path}). Set CONDA_DIR to an installation, or INSTALL_CONDA=true to install Miniforge`,
        {
          data: { target: host.target },
        },
      );
    }
    let prefix = probe.prefix;
    if (!prefix) {
      // the probe could not place a named environment before conda existed: beside the new install
      const root = tool.path.replace(/\/(bin|condabin)\/[^/]+$/, "");
      prefix = `${root}/envs/${spec.name}`;
    }
    return { tool, prefix };
  },

  async build(
    ctx: BackendContext,
    tool: ToolInfo,
    prefix: string,
    fileOnHost: string,
  ): Promise<BuildOutcome> {
    const state = ctx.probe.prefixState ?? "missing";
    if (state === "venv" || state === "other") {
      throw new SidecarError(
        "ENV_FAILED",
        `${prefix} on ${ctx.host.target} exists and is not a conda environment; refusing to touch it. Choose another name or prefix`,
        { data: { target: ctx.host.target, prefix } },
      );
    }
    const mode = state === "conda" ? "update" : "create";
    const argv = condaCommand(tool, mode, prefix, fileOnHost);
    ctx.progress({ phase: mode, message: `${argv.slice(0, -1).join(" ")}` });
    await runStep(
      ctx.host,
      argv.map(shellQuote).join(" "),
      `\`${tool.kind} ${argv[1] === "env" ? `env ${mode}` : argv[1]}\` of ${prefix}`,
      {
        phase: mode,
        onProgress: ctx.progress,
        signal: ctx.signal,
        ...(ctx.watch ? { watch: ctx.watch } : {}),
        parse: parseCondaRecord,
        explain: explainConda,
        ...(ctx.hostEnv ? { env: ctx.hostEnv } : {}),
      },
    );
    return { action: mode === "create" ? "created" : "updated" };
  },
};
