/** The env service module: env.ensure and env.describe over RPC, progress as calls' progress and `env.progress` events. */
import { z } from "zod";
import type { DaemonContext, ServiceModule } from "../daemon/module.js";
import type { HostPool } from "../ssh/host.js";
import { defineMethod } from "../rpc/registry.js";
import { describeParams, ensureParams } from "./params.js";
import { EnvService, localOnlyPool, type EnsureOutcome } from "./service.js";

/** snake_case form of an ensure outcome, as it crosses the RPC. */
export function ensureWire(o: EnsureOutcome): Record<string, unknown> {
  const e = o.env;
  return {
    env: e && {
      target: e.target,
      backend: e.backend,
      name: e.name,
      prefix: e.prefix,
      action: e.action,
      hash: e.hash,
      file: e.file,
      tool: e.tool,
      python: e.python,
      parsl: e.parsl,
      interpreter: e.interpreter,
      activation: { path_prepend: e.activation.pathPrepend, set: e.activation.set, unset: e.activation.unset, scripts: e.activation.scripts },
      worker_init: e.workerInit,
      dropped_keys: e.dropped,
      waited: e.waited,
      duration_ms: e.durationMs,
    },
    container: o.container,
  };
}

/** Build the env module; `pool` is the daemon's SSH pool (`local` only when absent). */
export function envModule(ctx: DaemonContext, deps: { pool?: HostPool } = {}): ServiceModule {
  const service = new EnvService(deps.pool ?? localOnlyPool, ctx.events);
  return {
    name: "env",
    methods: [
      defineMethod({
        name: "env.ensure",
        description:
          "Create or update a Python environment (conda from a YAML, or uv from requirements/pyproject) on `local` or a pool, and build a Singularity/Apptainer image when asked; a no-op when the file's hash equals the recorded one. Progress: {target, env, phase, message, fraction?}.",
        params: ensureParams,
        result: z.object({ env: z.record(z.string(), z.unknown()).nullable(), container: z.record(z.string(), z.unknown()).nullable() }),
        handler: async (p, call) => {
          const out = await service.ensure(p, {
            onProgress: (pr) => call.progress({ ...pr }),
            signal: call.signal,
            force: p.force,
            ...(p.lock_timeout_ms ? { lockTimeoutMs: p.lock_timeout_ms } : {}),
          });
          return ensureWire(out) as { env: Record<string, unknown> | null; container: Record<string, unknown> | null };
        },
      }),
      defineMethod({
        name: "env.describe",
        description: "Where an environment is on a host, whether it is current (recorded hash = file hash), its Python and Parsl versions, interpreter and worker_init; changes nothing.",
        params: describeParams,
        result: z.record(z.string(), z.unknown()),
        handler: async (p) => (await service.describe(p)) as unknown as Record<string, unknown>,
      }),
    ],
    status: () => service.status(),
  };
}
