/**
 * `run --env SPEC...`: before COMMAND starts, ensure each environment; this machine's is then
 * activated for COMMAND (PATH first, CONDA_PREFIX/VIRTUAL_ENV, PARSL_SIDECAR_PYTHON), so that
 * `python main.py` is the environment's interpreter itself and gets the job's signals.
 * SPEC: `local.conf` (this machine) or `TARGET=FILE.conf` (a pool, ensured only).
 * Shaped like the jobs service's JobPreparer (src/jobs/job-context.ts) without importing it.
 */
import { isAbsolute, resolve } from "node:path";
import { SidecarError } from "../errors.js";
import { commandEnv, type Activation } from "./activation.js";
import type { EnsureCall } from "./service.js";

/** COMMAND's interpreter (the executors' preflight reads it as this machine's Python). */
export const PYTHON_ENV = "PARSL_SIDECAR_PYTHON";

export interface EnvJob {
  id: string;
  cwd: string;
  envs: string[];
  signal: AbortSignal;
  log: { info(obj: object, msg: string): void };
}

/** Parse one `run --env` spec into a target and a local.conf path (absolute, against cwd). */
export function parseEnvSpec(spec: string, cwd: string): { target: string; conf: string } {
  const eq = spec.indexOf("=");
  const target = eq > 0 ? spec.slice(0, eq) : "local";
  const file = eq > 0 ? spec.slice(eq + 1) : spec;
  if (file === "" || /\s/.test(target))
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected \`--env\` to be FILE.conf or TARGET=FILE.conf, got \`${spec}\``,
    );
  return { target, conf: isAbsolute(file) ? file : resolve(cwd, file) };
}

/** What the preparer needs of the env service: the service itself, or an RPC adapter (`run --connection`). */
export interface EnvEnsurer {
  ensure(
    params: { target: string; conf: string; parsl?: string },
    call: EnsureCall,
  ): Promise<{ env: { activation: Activation; parsl: string | null } | null }>;
}

/** The preparer for `run --env`; returns the variables COMMAND gets. */
export function envPreparer(service: EnvEnsurer): {
  name: string;
  handles: Array<"env">;
  prepare(job: EnvJob): Promise<{ env: Record<string, string> }>;
} {
  return {
    name: "env",
    handles: ["env"],
    async prepare(job) {
      const specs = job.envs.map((s) => parseEnvSpec(s, job.cwd));
      if (specs.filter((s) => s.target === "local").length > 1)
        throw new SidecarError(
          "INVALID_ARGUMENT",
          "Only one `--env` for this machine can be activated for COMMAND",
        );
      const out: Record<string, string> = {};
      // this machine's first: the pools' environments get the Parsl it holds (the workflow's)
      specs.sort((a, b) => Number(b.target === "local") - Number(a.target === "local"));
      let parsl: string | undefined;
      for (const s of specs) {
        const res = await service.ensure(
          { target: s.target, conf: s.conf, ...(parsl ? { parsl } : {}) },
          {
            signal: job.signal,
            onProgress: (p) =>
              job.log.info(
                { job: job.id, target: p.target, env: p.env, phase: p.phase },
                p.message,
              ),
          },
        );
        if (s.target !== "local" || !res.env) continue;
        parsl = res.env.parsl ?? undefined;
        const act = res.env.activation;
        const vars = commandEnv(act, { PATH: process.env.PATH ?? "" });
        Object.assign(out, vars, { [PYTHON_ENV]: act.interpreter });
        // COMMAND's env starts from the sidecar's: blank what activation removes (Python ignores empty PYTHON* values)
        for (const k of act.unset) if (process.env[k] !== undefined) out[k] = "";
      }
      return { env: out };
    },
  };
}
