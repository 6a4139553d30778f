/**
 * `run --connection FILE --executors ... --env ...`: the job is supervised by this process but the
 * environments, executors and tunnels live in an already running sidecar, reached over its RPC.
 * These adapters give the same preparers as an in-process sidecar (src/env/preparer.ts,
 * ./executors-preparer.ts) RPC-backed services: `env.ensure`, `executors.complete` with the job
 * id as owner and this process as owner_pid (the sidecar releases them if `run` dies), and
 * `executors.release` at the job's tunnels stage.
 */
import type { SidecarClient } from "../client/client.js";
import type { Activation } from "../env/activation.js";
import { envPreparer, type EnvEnsurer } from "../env/preparer.js";
import type { CompleteOutcome } from "../executors/complete.js";
import { executorsPreparer, type ExecutorsCompleter } from "./executors-preparer.js";
import type { JobPreparer } from "./job-context.js";

interface WireActivation {
  path_prepend: string[];
  set: Record<string, string>;
  unset: string[];
  scripts: string[];
}

interface WireEnv {
  backend: Activation["backend"];
  prefix: string;
  name: string | null;
  interpreter: string;
  parsl: string | null;
  activation: WireActivation;
}

/** An env ensurer that calls `env.ensure` on the sidecar behind `client`. */
export function rpcEnvEnsurer(client: SidecarClient): EnvEnsurer {
  return {
    async ensure(params, call) {
      const res = await client.call<{ env: WireEnv | null }>(
        "env.ensure",
        { ...params, force: call.force ?? false },
        {
          timeout: 0,
          onProgress: (p) => call.onProgress?.(p as never),
        },
      );
      const e = res.env;
      if (!e) return { env: null };
      const activation: Activation = {
        backend: e.backend,
        prefix: e.prefix,
        name: e.name,
        interpreter: e.interpreter,
        pathPrepend: e.activation.path_prepend,
        set: e.activation.set,
        unset: e.activation.unset,
        scripts: e.activation.scripts,
      };
      return { env: { activation, parsl: e.parsl } };
    },
  };
}

/** An executors completer that calls `executors.complete` / `executors.release` on the sidecar behind `client`. */
export function rpcExecutorsCompleter(client: SidecarClient): ExecutorsCompleter {
  return {
    async complete(req, owner, pid) {
      const res = await client.call<Omit<CompleteOutcome, "opened">>(
        "executors.complete",
        {
          executors: req.json,
          path: req.file,
          reuse: req.reuse,
          owner,
          owner_pid: pid ?? process.pid,
          ...(req.labels ? { labels: req.labels } : {}),
        },
        {
          timeout: 0,
          onProgress: (p) => req.progress?.(String(p.label ?? ""), String(p.message ?? "")),
        },
      );
      return { ...res, opened: [] };
    },
    release: (owner) => client.call("executors.release", { owner }, { timeout: 60_000 }),
  };
}

/** The preparers `run --connection` adds to its jobs service. */
export function connectionPreparers(client: SidecarClient, outDir: string): JobPreparer[] {
  return [
    envPreparer(rpcEnvEnsurer(client)),
    executorsPreparer(rpcExecutorsCompleter(client), outDir),
  ];
}
