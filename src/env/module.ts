/** The env service module: env.ensure and env.describe over RPC, progress as calls' progress and `env.progress` events. */
import { z } from "zod";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import type { Hosts } from "../ssh/host.js";
import { defineMethod } from "../rpc/registry.js";
import { describeParams, ensureParams } from "./params.js";
import { envPreparer } from "./preparer.js";
import { EnvService, localOnlyHosts } from "./service.js";
import { ensureWire } from "./wire.js";

/** Something that runs preparers before a job's COMMAND (the jobs service). */
export interface PreparerHost {
  addPreparer(p: ReturnType<typeof envPreparer>): void;
}

/** Build the env module; `hosts` is the daemon's SshConnections (`local` only when absent); `jobs` gets the `run --env` preparer. */
export function envModule(
  ctx: DaemonContext,
  deps: { hosts?: Hosts; jobs?: PreparerHost } = {},
): ServiceModule {
  const service = new EnvService(deps.hosts ?? localOnlyHosts, ctx.events);
  deps.jobs?.addPreparer(envPreparer(service));
  return {
    name: "env",
    methods: [
      defineMethod({
        name: "env.ensure",
        description:
          "Create or update a Python environment (conda from a YAML, or uv from requirements/pyproject) on `local` or a pool, and build a Singularity/Apptainer image when asked; a no-op when the file's hash equals the recorded one. Progress: {target, env, phase, message, fraction?}.",
        params: ensureParams,
        result: z.object({
          env: z.record(z.string(), z.unknown()).nullable(),
          container: z.record(z.string(), z.unknown()).nullable(),
        }),
        handler: async (p, call) => {
          const out = await service.ensure(p, {
            onProgress: (pr) => call.progress({ ...pr }),
            signal: call.signal,
            force: p.force,
            ...(p.lock_timeout_ms ? { lockTimeoutMs: p.lock_timeout_ms } : {}),
          });
          return ensureWire(out) as {
            env: Record<string, unknown> | null;
            container: Record<string, unknown> | null;
          };
        },
      }),
      defineMethod({
        name: "env.describe",
        description:
          "Where an environment is on a host, whether it is current (recorded hash = file hash), its Python and Parsl versions, interpreter and worker_init; changes nothing.",
        params: describeParams,
        result: z.record(z.string(), z.unknown()),
        handler: async (p) => (await service.describe(p)) as unknown as Record<string, unknown>,
      }),
    ],
    status: () => service.status(),
  };
}
