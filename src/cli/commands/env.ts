/**
 * `parsl-sidecar env ensure|show`: make a Python environment (conda or uv) exist on this machine
 * or a pool, or show its state. Runs in this process, or through a sidecar with --connection.
 * The service, SshConnections and the RPC client are imported when used: the unchanged case on
 * this machine loads neither ssh2 nor zeromq nor zod.
 */
import type { Command } from "commander";
import type { SpecParams } from "../../env/params.js";
import type { EnvService } from "../../env/service.js";
import type { EnvProgress } from "../../env/step.js";
import { SidecarError } from "../../errors.js";
import type { SidecarClient } from "../../client/client.js";
import { fail, printJson } from "../output.js";

const CONNECTION_ENV = "PARSL_SIDECAR_CONNECTION_FILE";

interface Opts {
  target: string;
  conf?: string;
  file?: string;
  backend?: string;
  name?: string;
  prefix?: string;
  condaDir?: string;
  installConda?: boolean;
  installerUrl?: string;
  installerFile?: string;
  installerSha256?: string;
  uv?: string;
  installUv?: boolean;
  python?: string;
  systemSitePackages?: boolean;
  findLinks?: string[];
  index?: boolean;
  indexUrl?: string;
  parsl?: string;
  containerPath?: string;
  containerFile?: string;
  createContainer?: boolean;
  force?: boolean;
  lockTimeout?: string;
  connection?: string;
  json?: boolean;
  quiet?: boolean;
}

function specOptions(cmd: Command): Command {
  return cmd
    .option(
      "--target <target>",
      "`local` or an SSH target (user@host[:port] or an ~/.ssh/config alias)",
      "local",
    )
    .option(
      "--conf <file>",
      "read CONDA_ENV, CONDA_DIR, INSTALL_CONDA, LOCAL_CONDA_YAML, ... from this local.conf",
    )
    .option(
      "--file <file>",
      "conda YAML, requirements.txt or pyproject.toml (the backend follows the extension)",
    )
    .option("--backend <conda|uv>", "conda (YAML) or uv (requirements / pyproject)")
    .option("--name <name>", "environment name (CONDA_ENV)")
    .option("--prefix <dir>", "environment directory on the host")
    .option("--conda-dir <dir>", "conda installation on the host (CONDA_DIR)")
    .option(
      "--install-conda",
      "install Miniforge into CONDA_DIR when conda is missing (INSTALL_CONDA)",
    )
    .option("--installer-url <url>", "conda installer to download (default: Miniforge's latest)")
    .option("--installer-file <file>", "conda installer on this machine")
    .option("--installer-sha256 <hex>", "expected SHA-256 of the installer")
    .option("--uv <path>", "uv on the host")
    .option("--install-uv", "pip install uv into ~/.cache/parsl-sidecar/uv when missing")
    .option("--python <python>", "interpreter or version for `uv venv`")
    .option("--system-site-packages", "uv: let the venv see the base interpreter's packages")
    .option(
      "--find-links <dir>",
      "uv: extra wheel directory (repeatable)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("--no-index", "uv: do not use the package index")
    .option(
      "--parsl <version|none>",
      "the Parsl release the environment must hold (default for a pool: this machine's, from $PARSL_SIDECAR_PYTHON or python3)",
    )
    .option("--index-url <url>", "uv: package index")
    .option("--container-path <path>", "Singularity/Apptainer image on the host")
    .option("--container-file <file>", "definition file on this machine to build it from")
    .option("--create-container", "build the image when it is missing")
    .option(
      "--connection <file>",
      "run through this sidecar (default: in this process, or $PARSL_SIDECAR_CONNECTION_FILE)",
    )
    .option("--json", "print the result as JSON");
}

function paramsOf(o: Opts): SpecParams {
  const p: Record<string, unknown> = { target: o.target };
  const copy = (k: string, v: unknown): void => {
    if (v !== undefined) p[k] = v;
  };
  copy("conf", o.conf);
  copy("file", o.file);
  if (o.backend !== undefined && o.backend !== "conda" && o.backend !== "uv")
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected --backend to be conda or uv, got \`${o.backend}\``,
    );
  copy("backend", o.backend);
  copy("name", o.name);
  copy("prefix", o.prefix);
  copy("conda_dir", o.condaDir);
  copy("install_conda", o.installConda);
  copy("installer_url", o.installerUrl);
  copy("installer_file", o.installerFile);
  copy("installer_sha256", o.installerSha256);
  copy("uv", o.uv);
  copy("install_uv", o.installUv);
  copy("python", o.python);
  copy("system_site_packages", o.systemSitePackages);
  copy("find_links", o.findLinks);
  if (o.index === false) p.no_index = true;
  copy("index_url", o.indexUrl);
  copy("parsl", o.parsl);
  if (o.containerPath)
    p.container = {
      create: o.createContainer ?? false,
      path: o.containerPath,
      ...(o.containerFile ? { file: o.containerFile } : {}),
    };
  return p as SpecParams;
}

function progressLine(p: EnvProgress | Record<string, unknown>): void {
  const frac = typeof p.fraction === "number" ? ` (${Math.round(p.fraction * 100)}%)` : "";
  process.stderr.write(
    `[${String(p.target)}] ${String(p.env)}: ${String(p.phase)}: ${String(p.message)}${frac}\n`,
  );
}

/** In this process: `local` needs no pool; a pool target gets private SshConnections, closed after. */
async function withService<T>(target: string, fn: (s: EnvService) => Promise<T>): Promise<T> {
  const { EnvService, localOnlyHosts } = await import("../../env/service.js");
  if (target === "local") return await fn(new EnvService(localOnlyHosts));
  const { SshConnections } = await import("../../ssh/connections.js");
  const { answerPromptsInProcess } = await import("../prompts.js");
  const connections = new SshConnections();
  const stopAnswering = answerPromptsInProcess(connections.prompts);
  try {
    return await fn(new EnvService(connections));
  } finally {
    stopAnswering();
    await connections.close();
  }
}

async function withClient<T>(
  connection: string | undefined,
  fn: (c: SidecarClient) => Promise<T>,
): Promise<T> {
  const { withClient: open } = await import("../client.js");
  return await open(connection, fn);
}

function useSidecar(o: Opts): boolean {
  return o.connection !== undefined || Boolean(process.env[CONNECTION_ENV]);
}

function printEnsure(res: Record<string, unknown>): void {
  const e = res.env as Record<string, unknown> | null;
  if (e) {
    const secs = (Number(e.duration_ms) / 1000).toFixed(2);
    process.stdout.write(
      `${String(e.target)}: ${String(e.name ?? e.prefix)} ${String(e.action)} at ${String(e.prefix)} (${String(e.backend)}, ${secs} s)\n`,
    );
    process.stdout.write(
      `  python ${String(e.python ?? "none")}, parsl ${String(e.parsl ?? "not installed")}\n  interpreter ${String(e.interpreter)}\n  worker_init ${String(e.worker_init)}\n`,
    );
    if (Array.isArray(e.dropped_keys) && e.dropped_keys.length > 0)
      process.stdout.write(
        `  (the copy given to conda leaves out: ${e.dropped_keys.join(", ")})\n`,
      );
  }
  const c = res.container as Record<string, unknown> | null;
  if (c)
    process.stdout.write(
      `${String(c.target)}: container ${String(c.path)}: ${String(c.action)}${c.exists ? "" : " (missing)"}\n`,
    );
}

export function registerEnv(program: Command): void {
  const env = program
    .command("env")
    .description(
      "Python environments here and on pools: conda from a YAML, or uv; activation without `conda activate`",
    );

  specOptions(
    env
      .command("ensure")
      .description(
        "create or update the environment (a no-op when its file is unchanged); build the container when asked",
      ),
  )
    .option("--force", "rebuild even when the recorded hash matches")
    .option(
      "--lock-timeout <seconds>",
      "wait this long for another ensure of the same environment",
      "1800",
    )
    .option("--quiet", "no progress lines")
    .action(async (o: Opts) => {
      try {
        const params = paramsOf(o);
        const lockTimeoutMs = Number(o.lockTimeout) * 1000;
        if (!(lockTimeoutMs > 0))
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Expected --lock-timeout to be a positive number of seconds, got \`${o.lockTimeout}\``,
          );
        const onProgress = o.quiet ? undefined : progressLine;
        let res: Record<string, unknown>;
        if (useSidecar(o)) {
          res = await withClient(o.connection, (c) =>
            c.call<Record<string, unknown>>(
              "env.ensure",
              { ...params, force: o.force ?? false, lock_timeout_ms: lockTimeoutMs },
              { timeout: 0, ...(onProgress ? { onProgress } : {}) },
            ),
          );
        } else {
          const abort = new AbortController();
          const stop = (): void => abort.abort();
          process.once("SIGINT", stop);
          process.once("SIGTERM", stop);
          try {
            const out = await withService(params.target, (s) =>
              s.ensure(params, {
                ...(onProgress ? { onProgress } : {}),
                signal: abort.signal,
                force: o.force ?? false,
                lockTimeoutMs,
              }),
            );
            res = (await import("../../env/wire.js")).ensureWire(out);
          } finally {
            process.off("SIGINT", stop);
            process.off("SIGTERM", stop);
          }
        }
        if (o.json) printJson(res);
        else printEnsure(res);
      } catch (err) {
        fail(err, o);
      }
    });

  specOptions(
    env
      .command("show")
      .description(
        "where the environment is, whether it is current, its Python and Parsl versions and worker_init (changes nothing)",
      ),
  ).action(async (o: Opts) => {
    try {
      const params = paramsOf(o);
      const res = useSidecar(o)
        ? await withClient(o.connection, (c) =>
            c.call<Record<string, unknown>>(
              "env.describe",
              params as unknown as Record<string, unknown>,
              { timeout: 120_000 },
            ),
          )
        : ((await withService(params.target, (s) => s.describe(params))) as unknown as Record<
            string,
            unknown
          >);
      if (o.json) return printJson(res);
      process.stdout.write(
        `${String(res.target)}: ${String(res.name ?? res.prefix ?? "-")} (${String(res.backend ?? "-")}) ${String(res.state)}${res.prefix ? ` at ${String(res.prefix)}` : ""}\n`,
      );
      if (res.python)
        process.stdout.write(
          `  python ${String(res.python)}, parsl ${String(res.parsl ?? "not installed")}\n`,
        );
      if (res.ensured_at) process.stdout.write(`  ensured ${String(res.ensured_at)}\n`);
      if (res.worker_init) process.stdout.write(`  worker_init ${String(res.worker_init)}\n`);
      const c = res.container as { path: string; exists: boolean } | null;
      if (c) process.stdout.write(`  container ${c.path}: ${c.exists ? "exists" : "missing"}\n`);
    } catch (err) {
      fail(err, o);
    }
  });
}
