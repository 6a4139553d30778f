/**
 * The uv backend: a virtual environment made by `uv venv` from the host's python3 (or a given
 * interpreter) and filled with `uv pip install -r` from a requirements file or a pyproject.toml.
 * uv is found on PATH, at a given path, or bootstrapped with pip into ~/.cache/parsl-sidecar/uv.
 */
import { SidecarError } from "../errors.js";
import type { BackendContext, BuildOutcome, EnvBackend, ToolInfo } from "./context.js";
import { execChecked, pathWord, shellQuote } from "./host-shell.js";
import { acquireLock, lockPathFor } from "./lock.js";
import { runStep } from "./step.js";

/** Where `pip install uv` goes when INSTALL_UV is true. */
export const UV_BOOTSTRAP_DIR = "~/.cache/parsl-sidecar/uv";

/** Environment for uv on the host: never download interpreters, no colors. */
export function uvEnv(extra: Record<string, string> | undefined): Record<string, string> {
  return { UV_PYTHON_DOWNLOADS: "never", NO_COLOR: "1", ...(extra ?? {}) };
}

/** `uv venv` and `uv pip install` command lines for a spec. */
export function uvCommands(
  ctx: Pick<BackendContext, "spec">,
  uv: string,
  python: string,
  prefix: string,
  fileOnHost: string,
  existing: "missing" | "empty",
): { venv: string[]; install: string[] } {
  const { spec } = ctx;
  const venv = [
    uv,
    "venv",
    "--python",
    python,
    ...(spec.systemSitePackages ? ["--system-site-packages"] : []),
    ...(existing === "empty" ? ["--allow-existing"] : []),
    prefix,
  ];
  const install = [uv, "pip", "install", "--python", `${prefix}/bin/python`, "-r", fileOnHost];
  // one resolution with the file: a conflicting pin in it fails here, named by uv
  if (spec.parsl) install.push(`parsl==${spec.parsl}`);
  for (const f of spec.findLinks ?? []) install.push("--find-links", f);
  if (spec.noIndex) install.push("--no-index");
  if (spec.indexUrl) install.push("--index-url", spec.indexUrl);
  return { venv, install };
}

async function bootstrapUv(ctx: BackendContext): Promise<ToolInfo> {
  const { host, probe } = ctx;
  if (!probe.python3) {
    throw new SidecarError(
      "ENV_NOT_FOUND",
      `Cannot install uv on ${host.target}: no python3 on its PATH (${probe.path}). Install Python 3 there, or uv itself`,
      { data: { target: host.target } },
    );
  }
  const dir = UV_BOOTSTRAP_DIR.replace(/^~/, probe.home);
  const lock = await acquireLock(host, lockPathFor(dir), {
    ...ctx.lock,
    ...(ctx.hostEnv ? { env: ctx.hostEnv } : {}),
    onWait: (o) =>
      ctx.progress({ phase: "lock", message: `waiting for another uv install (${o})` }),
  });
  try {
    const uv = `${dir}/bin/uv`;
    const have = await host.exec(`[ -x ${shellQuote(uv)} ] && echo yes`);
    if (!have.stdout.includes("yes")) {
      ctx.progress({
        phase: "install",
        message: `installing uv into ${dir} (python3 -m venv + pip install uv)`,
      });
      const q = shellQuote(dir);
      await runStep(
        host,
        `mkdir -p "$(dirname ${q})" && ${shellQuote(probe.python3)} -m venv ${q} && ${q}/bin/python -m pip install --disable-pip-version-check --quiet uv`,
        "Installing uv",
        {
          phase: "install",
          onProgress: ctx.progress,
          signal: ctx.signal,
          watch: lock,
          ...(ctx.hostEnv ? { env: ctx.hostEnv } : {}),
        },
      );
    }
    return { kind: "uv", path: uv, installed: true };
  } finally {
    await lock.release();
  }
}

export const uvBackend: EnvBackend = {
  recordPath: "parsl-sidecar.json",

  async prepare(ctx: BackendContext): Promise<{ tool: ToolInfo; prefix: string }> {
    const { spec, probe, host } = ctx;
    if (!spec.python && !probe.python3) {
      throw new SidecarError(
        "ENV_NOT_FOUND",
        `No python3 on ${host.target} (PATH=${probe.path}): the uv backend makes its environment from the host's Python. Install Python 3.10+ there, set UV_PYTHON to an interpreter, or use the conda backend with INSTALL_CONDA=true`,
        { data: { target: host.target } },
      );
    }
    let tool: ToolInfo;
    if (probe.uv) tool = { kind: "uv", path: probe.uv, installed: false };
    else if (spec.uv)
      throw new SidecarError("ENV_NOT_FOUND", `No executable uv at ${spec.uv} on ${host.target}`, {
        data: { target: host.target },
      });
    else if (spec.installUv) tool = await bootstrapUv(ctx);
    else {
      throw new SidecarError(
        "ENV_NOT_FOUND",
        `No uv on ${host.target} (PATH=${probe.path}). Install it (pip install uv), give its path (UV_PATH), or set INSTALL_UV=true`,
        { data: { target: host.target } },
      );
    }
    return { tool, prefix: probe.prefix! };
  },

  async build(
    ctx: BackendContext,
    tool: ToolInfo,
    prefix: string,
    fileOnHost: string,
  ): Promise<BuildOutcome> {
    const state = ctx.probe.prefixState ?? "missing";
    if (state === "conda" || state === "other") {
      throw new SidecarError(
        "ENV_FAILED",
        `${prefix} on ${ctx.host.target} exists and is not a virtual environment; refusing to touch it. Choose another name or prefix`,
        { data: { target: ctx.host.target, prefix } },
      );
    }
    const python = ctx.spec.python
      ? ctx.spec.python.startsWith("~/")
        ? ctx.spec.python.replace(/^~/, ctx.probe.home)
        : ctx.spec.python
      : ctx.probe.python3!;
    const cmds = uvCommands(
      ctx,
      tool.path,
      python,
      prefix,
      fileOnHost,
      state === "empty" ? "empty" : "missing",
    );
    const env = uvEnv(ctx.hostEnv);
    if (state !== "venv") {
      await execChecked(
        ctx.host,
        `mkdir -p "$(dirname ${pathWord(prefix)})"`,
        `Creating the parent of ${prefix}`,
        ctx.hostEnv ? { env: ctx.hostEnv } : {},
      );
      ctx.progress({ phase: "create", message: cmds.venv.join(" ") });
      await runStep(ctx.host, cmds.venv.map(shellQuote).join(" "), `\`uv venv\` of ${prefix}`, {
        phase: "create",
        onProgress: ctx.progress,
        signal: ctx.signal,
        env,
        ...(ctx.watch ? { watch: ctx.watch } : {}),
      });
    }
    ctx.progress({ phase: "install", message: cmds.install.join(" ") });
    await runStep(
      ctx.host,
      cmds.install.map(shellQuote).join(" "),
      `\`uv pip install\` into ${prefix}`,
      {
        phase: "install",
        onProgress: ctx.progress,
        signal: ctx.signal,
        env,
        ...(ctx.watch ? { watch: ctx.watch } : {}),
      },
    );
    return { action: state === "venv" ? "updated" : "created" };
  },
};
