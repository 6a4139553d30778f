/**
 * Method definitions: a name, zod schemas for params and result, and a handler. Each service
 * defines its methods in its own folder; the daemon only collects them.
 */
import { z } from "zod";
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import type { Logger } from "../util/logger.js";
import { parseOrThrow } from "../util/validation.js";

export interface CallContext {
  /** who called: the routing identity of the client, hex */
  client: string;
  /** the request id */
  requestId: string;
  /** send a progress message for this call to its caller */
  progress(data: Record<string, unknown>): void;
  /** aborted when the daemon shuts down */
  signal: AbortSignal;
  events: EventBus;
  log: Logger;
}

export interface MethodDef<P extends z.ZodType = z.ZodType, R extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  params: P;
  result: R;
  handler: (params: z.output<P>, ctx: CallContext) => Promise<z.input<R>> | z.input<R>;
}

/** Helper that keeps the handler's types tied to its schemas. */
export function defineMethod<P extends z.ZodType, R extends z.ZodType>(
  def: MethodDef<P, R>,
): MethodDef {
  return def as unknown as MethodDef;
}

export class Registry {
  private readonly methods = new Map<string, MethodDef>();

  add(...defs: MethodDef[]): void {
    for (const def of defs) {
      if (this.methods.has(def.name)) throw new Error(`method ${def.name} registered twice`);
      this.methods.set(def.name, def);
    }
  }

  get(name: string): MethodDef {
    const def = this.methods.get(name);
    if (!def) {
      throw new SidecarError(
        "UNKNOWN_METHOD",
        `Unknown method \`${name}\`; call sidecar.describe for the list of methods`,
        { data: { method: name } },
      );
    }
    return def;
  }

  names(): string[] {
    return [...this.methods.keys()].sort();
  }

  async invoke(name: string, rawParams: unknown, ctx: CallContext): Promise<unknown> {
    return await this.start(name, rawParams, ctx);
  }

  /**
   * Check the params and run the handler: its result as it returns it, a value or a promise
   * (the server answers a synchronous handler in the same tick). Throws for an unknown method,
   * bad params or a handler that throws.
   */
  start(name: string, rawParams: unknown, ctx: CallContext): unknown {
    const def = this.get(name);
    const params = parseOrThrow(def.params, rawParams ?? {}, {
      prefix: "params",
      what: `params for ${name}`,
    });
    return def.handler(params, ctx);
  }

  /** Every method with its params and result as JSON Schema. */
  describe(): Array<{ name: string; description: string; params: unknown; result: unknown }> {
    return this.names().map((name) => {
      const def = this.methods.get(name)!;
      return {
        name,
        description: def.description,
        params: toJsonSchema(def.params, "input"),
        result: toJsonSchema(def.result, "output"),
      };
    });
  }
}

export function toJsonSchema(schema: z.ZodType, io: "input" | "output"): unknown {
  try {
    return z.toJSONSchema(schema, { io, unrepresentable: "any" });
  } catch {
    return {};
  }
}
