/**
 * Singularity/Apptainer images on a host: when CREATE_SINGULARITY_CONTAINER is true and the
 * image is missing, build it there from the local definition file (copied over), into a
 * partial file renamed into place on success; otherwise leave it alone.
 */
import { SidecarError } from "../errors.js";
import { shCommand } from "../remote/index.js";
import type { Host } from "../ssh/host.js";
import { execChecked, hostTempDir, pathWord, putFile, shellQuote } from "./host-shell.js";
import { acquireLock, lockPathFor } from "./lock.js";
import { parseLines } from "./probe.js";
import type { ContainerSpec } from "./spec.js";
import { runStep, type EnvProgress } from "./step.js";

export interface ContainerResult {
  target: string;
  path: string;
  /** built now; existed already; not asked to create (and maybe missing) */
  action: "built" | "exists" | "skipped";
  exists: boolean;
  builder: string | null;
  command: string[] | null;
}

export interface ContainerOptions {
  onProgress?: (p: EnvProgress) => void;
  signal?: AbortSignal;
  hostEnv?: Record<string, string>;
}

async function look(
  host: Host,
  path: string,
  env: Record<string, string> | undefined,
): Promise<{ path: string; exists: boolean; builder?: string; hostPath: string }> {
  // `~` in the path expands on the host: a shell word, not a quoted value
  const script = shCommand("env/container-probe.sh", [{ shell: pathWord(path) }]);
  const { one } = parseLines(
    (await execChecked(host, script, `Looking for ${path}`, env ? { env } : {})).stdout,
  );
  const out = {
    path: one.get("path") ?? path,
    exists: one.has("exists"),
    hostPath: one.get("host_path") ?? "",
  };
  return one.get("builder") ? { ...out, builder: one.get("builder")! } : out;
}

/** The build command line (partial output first, then the definition file). */
export function buildCommand(
  builder: string,
  spec: ContainerSpec,
  partial: string,
  def: string,
): string[] {
  return [
    ...(spec.sudo ? ["sudo", "-n"] : []),
    builder,
    "build",
    ...(spec.buildArgs ?? []),
    partial,
    def,
  ];
}

/** Build the image of `spec` on `host` if asked to and missing. */
export async function ensureContainer(
  host: Host,
  spec: ContainerSpec,
  opts: ContainerOptions = {},
): Promise<ContainerResult> {
  const progress = (message: string): void =>
    opts.onProgress?.({ target: host.target, env: spec.path, phase: "container", message });
  let seen = await look(host, spec.path, opts.hostEnv);
  const base = { target: host.target, path: seen.path };
  if (!spec.create)
    return { ...base, action: "skipped", exists: seen.exists, builder: null, command: null };
  if (seen.exists) return { ...base, action: "exists", exists: true, builder: null, command: null };
  if (!spec.file)
    throw new SidecarError(
      "ENV_INVALID",
      `CREATE_SINGULARITY_CONTAINER is true and ${seen.path} is missing on ${host.target}, but LOCAL_SINGULARITY_FILE is not set`,
      { data: { target: host.target } },
    );
  if (!seen.builder) {
    throw new SidecarError(
      "ENV_NOT_FOUND",
      `Cannot build ${seen.path} on ${host.target}: neither singularity nor apptainer is installed there (PATH=${seen.hostPath}). Install one of them, copy a built image to that path, or set CREATE_SINGULARITY_CONTAINER=false`,
      { data: { target: host.target, path: seen.path } },
    );
  }
  const dir = seen.path.replace(/\/[^/]+$/, "") || "/";
  await execChecked(
    host,
    `mkdir -p ${shellQuote(dir)}`,
    `Creating ${dir}`,
    opts.hostEnv ? { env: opts.hostEnv } : {},
  );
  const lock = await acquireLock(host, lockPathFor(seen.path), {
    ...(opts.hostEnv ? { env: opts.hostEnv } : {}),
    onWait: (o) => progress(`waiting for another build of ${seen.path} (${o})`),
  });
  const tmp = await hostTempDir(host);
  const partial = `${dir}/.${seen.path.slice(dir.length + 1)}.partial-${process.pid}.sif`;
  try {
    seen = await look(host, spec.path, opts.hostEnv);
    if (seen.exists)
      return { ...base, action: "exists", exists: true, builder: null, command: null };
    const def = `${tmp.path}/container.def`;
    await putFile(host, spec.file, def);
    const argv = buildCommand(seen.builder!, spec, partial, def);
    progress(argv.join(" "));
    await runStep(
      host,
      argv.map(shellQuote).join(" "),
      `Building ${seen.path} with ${seen.builder}`,
      {
        phase: "container",
        watch: lock,
        ...(opts.onProgress ? { onProgress: (p) => progress(p.message) } : {}),
        signal: opts.signal,
        ...(opts.hostEnv ? { env: opts.hostEnv } : {}),
      },
    );
    await execChecked(
      host,
      `[ -s ${shellQuote(partial)} ] && mv -f ${shellQuote(partial)} ${shellQuote(seen.path)}`,
      `Moving the built image to ${seen.path}`,
    );
    progress(`built ${seen.path}`);
    return { ...base, action: "built", exists: true, builder: seen.builder!, command: argv };
  } finally {
    await host.exec(`rm -rf -- ${shellQuote(partial)}`).catch(() => undefined);
    await tmp.remove();
    await lock.release();
  }
}
