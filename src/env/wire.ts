/** The snake_case shape of results as they cross the RPC (and the CLI's --json). */
import type { EnsureOutcome } from "./service.js";

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
      activation: {
        path_prepend: e.activation.pathPrepend,
        set: e.activation.set,
        unset: e.activation.unset,
        scripts: e.activation.scripts,
      },
      worker_init: e.workerInit,
      dropped_keys: e.dropped,
      waited: e.waited,
      duration_ms: e.durationMs,
    },
    container: o.container,
  };
}
