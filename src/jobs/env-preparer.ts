/**
 * `run --env FILE...`: before COMMAND starts, ensure each environment here (a conda YAML, a
 * requirements.txt / pyproject.toml for uv, or a local.conf) and run COMMAND with its activation:
 * PATH, CONDA_PREFIX / VIRTUAL_ENV set, a leading `python` resolved to the environment's
 * interpreter (no `conda run` wrapper: signals reach Python directly).
 */
import { basename } from "node:path";
import { commandEnv, resolveCommand } from "../env/activation.js";
import type { EnvService } from "../env/service.js";
import type { JobPreparer } from "./job-context.js";

/**
 * The env.ensure params for one `--env` value: a local.conf (it names the environment), or an
 * environment file, whose environment is then named after the workflow's directory.
 */
export function envParams(spec: string, cwd: string): { target: "local"; conf: string } | { target: "local"; file: string; name: string } {
  if (/\.conf$/.test(basename(spec))) return { target: "local", conf: spec };
  const name = basename(cwd).replace(/[^A-Za-z0-9_.+-]+/g, "-").replace(/^[-.]+/, "") || "workflow";
  return { target: "local", file: spec, name: name === "base" ? "base-env" : name };
}

export function envPreparer(service: Pick<EnvService, "ensure">): JobPreparer {
  return {
    name: "env",
    handles: ["env"],
    async prepare(job) {
      if (job.envs.length === 0) return;
      let env = job.env;
      let command = job.command;
      for (const spec of job.envs) {
        const out = await service.ensure(envParams(spec, job.cwd), {
          signal: job.signal,
          onProgress: (p) => job.log.info({ job: job.id, env: spec }, `${p.phase}: ${p.message}`),
        });
        if (!out.env) continue;
        env = commandEnv(out.env.activation, env);
        command = resolveCommand(command, out.env.activation);
      }
      return { env, command };
    },
  };
}
