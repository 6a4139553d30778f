/**
 * Installs conda (Miniforge/Miniconda) into CONDA_DIR on a host, the old script's job done
 * safely: under a lock, never over an existing directory (nothing is deleted), from an
 * installer whose SHA-256 is checked here and again on the host, with `-b -p`.
 */
import { SidecarError } from "../errors.js";
import { shCommand } from "../remote/index.js";
import type { BackendContext, ToolInfo } from "./context.js";
import { toolKind } from "./context.js";
import { execChecked, hostTempDir, putFile, shellQuote } from "./host-shell.js";
import { localInstaller } from "./installer.js";
import { acquireLock, lockPathFor } from "./lock.js";
import { parseLines } from "./probe.js";
import { runStep } from "./step.js";

/** Is there a conda in `dir`, does `dir` exist, and is its parent writable? */
async function inspect(
  ctx: BackendContext,
  dir: string,
): Promise<{
  tool?: string;
  exists: boolean;
  empty: boolean;
  parentWritable: boolean;
  parent: string;
  user: string;
  bash: boolean;
}> {
  const script = shCommand("env/conda-dir.sh", [dir]);
  const res = await execChecked(
    ctx.host,
    script,
    `Looking at CONDA_DIR ${dir}`,
    ctx.hostEnv ? { env: ctx.hostEnv } : {},
  );
  const { one } = parseLines(res.stdout);
  const out = {
    exists: one.has("exists"),
    empty: one.has("empty"),
    parentWritable: one.has("writable"),
    parent: one.get("parent") ?? "",
    user: one.get("user") ?? "",
    bash: one.has("bash"),
  };
  return one.get("tool") ? { ...out, tool: one.get("tool")! } : out;
}

/** Install conda into `condaDir` (an absolute path on the host) unless another ensure just did. */
export async function installConda(ctx: BackendContext, condaDir: string): Promise<ToolInfo> {
  const { host } = ctx;
  let seen = await inspect(ctx, condaDir);
  if (seen.tool) return { kind: toolKind(seen.tool), path: seen.tool, installed: false };
  if (!seen.parentWritable) {
    throw new SidecarError(
      "ENV_FAILED",
      `Cannot install conda into CONDA_DIR=${condaDir} on ${host.target}: its parent directory ${seen.parent} is not writable by ${seen.user || "this user"}. Choose a CONDA_DIR you can write to`,
      {
        data: { target: host.target, conda_dir: condaDir },
      },
    );
  }
  const lock = await acquireLock(host, lockPathFor(condaDir), {
    ...ctx.lock,
    ...(ctx.hostEnv ? { env: ctx.hostEnv } : {}),
    onWait: (o) =>
      ctx.progress({ phase: "lock", message: `waiting for another install of ${condaDir} (${o})` }),
  });
  try {
    seen = await inspect(ctx, condaDir);
    if (seen.tool) return { kind: toolKind(seen.tool), path: seen.tool, installed: false };
    if (seen.exists && !seen.empty) {
      throw new SidecarError(
        "ENV_FAILED",
        `CONDA_DIR=${condaDir} on ${host.target} exists but has no conda in it (looked for bin/conda, condabin/conda, bin/mamba, bin/micromamba). Nothing was deleted; remove or rename it yourself, or point CONDA_DIR elsewhere`,
        { data: { target: host.target, conda_dir: condaDir } },
      );
    }
    if (!seen.bash)
      throw new SidecarError(
        "ENV_NOT_FOUND",
        `The conda installer needs bash, which ${host.target} does not have on PATH`,
        { data: { target: host.target } },
      );
    ctx.progress({ phase: "install", message: `getting the conda installer` });
    const inst = await localInstaller(ctx.spec.installer ?? {}, ctx.probe.uname, {
      ...(ctx.cacheDir ? { cacheDir: ctx.cacheDir } : {}),
      onProgress: ctx.progress,
    });
    const tmp = await hostTempDir(host);
    try {
      const remote = `${tmp.path}/installer.sh`;
      ctx.progress({
        phase: "install",
        message: `copying the installer (${inst.sha256.slice(0, 12)}...) to ${host.target}`,
      });
      await putFile(host, inst.path, remote);
      const sum = await execChecked(
        host,
        shCommand("env/sha256.sh", [remote]),
        "Checking the installer's checksum",
      );
      const got = sum.stdout.trim().split(/\s+/)[0] ?? "";
      if (got !== "none" && got !== inst.sha256) {
        throw new SidecarError(
          "ENV_FAILED",
          `The conda installer changed on its way to ${host.target} (sha256 ${got}, expected ${inst.sha256}); refusing to run it`,
          { data: { target: host.target } },
        );
      }
      const args = ["-b", ...(seen.exists ? ["-u"] : []), "-p", condaDir];
      ctx.progress({
        phase: "install",
        message: `installing conda into ${condaDir} (bash installer ${args.join(" ")})`,
      });
      try {
        await runStep(
          host,
          `bash ${shellQuote(remote)} ${args.map(shellQuote).join(" ")}`,
          `The conda installer (${inst.source})`,
          {
            phase: "install",
            onProgress: ctx.progress,
            signal: ctx.signal,
            watch: lock,
            ...(ctx.hostEnv ? { env: ctx.hostEnv } : {}),
          },
        );
      } catch (err) {
        if (!seen.exists) {
          // a half-made install of ours: set it aside (not deleted) so that a retry can start clean
          const aside = `${condaDir}.failed-${new Date().toISOString().replace(/[:.]/g, "-")}`;
          const mv = await host.exec(
            `[ -e ${shellQuote(condaDir)} ] && mv ${shellQuote(condaDir)} ${shellQuote(aside)} && echo moved`,
          );
          if (mv.stdout.includes("moved") && err instanceof SidecarError)
            err.message += `\nThe partial install was moved to ${aside}.`;
        }
        throw err;
      }
    } finally {
      await tmp.remove();
    }
    seen = await inspect(ctx, condaDir);
    if (!seen.tool)
      throw new SidecarError(
        "ENV_FAILED",
        `The conda installer finished but ${condaDir} on ${host.target} has no bin/conda, condabin/conda, bin/mamba or bin/micromamba`,
        { data: { target: host.target } },
      );
    ctx.progress({ phase: "install", message: `conda installed: ${seen.tool}` });
    return { kind: toolKind(seen.tool), path: seen.tool, installed: true };
  } finally {
    await lock.release();
  }
}
