/** RPC methods that need no pool: executors.schema, executors.check, executors.explain. */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { SidecarError } from "../errors.js";
import { defineMethod, type MethodDef } from "../rpc/registry.js";
import { checkExecutors, parseExecutorsText } from "./check.js";
import { explainKeys, explainPools, explainText } from "./explain.js";
import { resolveExecutor } from "./resolve.js";
import { executorsJsonSchema } from "./schema.js";

/** `{path}` or `{executors}`: where an executors document comes from. */
export const sourceParams = {
  path: z.string().min(1).optional().describe("an executors.json on the sidecar's machine"),
  executors: z.record(z.string(), z.unknown()).optional().describe("the executors document itself"),
};

/** Load the document named by `{path}` or given as `{executors}`. */
export function loadSource(p: {
  path?: string | undefined;
  executors?: Record<string, unknown> | undefined;
}): { json: unknown; file: string } {
  if (p.executors !== undefined) return { json: p.executors, file: p.path ?? "executors" };
  if (p.path === undefined)
    throw new SidecarError(
      "INVALID_PARAMS",
      "Give `path` (an executors.json) or `executors` (the document)",
    );
  let text: string;
  try {
    text = readFileSync(p.path, "utf8");
  } catch (err) {
    throw new SidecarError(
      "EXECUTORS_INVALID",
      `Cannot read ${p.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    );
  }
  return { json: parseExecutorsText(text, p.path), file: p.path };
}

const issue = z.object({
  label: z.string().optional(),
  key: z.string().optional(),
  value: z.unknown().optional(),
  message: z.string(),
});

export function staticMethods(): MethodDef[] {
  return [
    defineMethod({
      name: "executors.schema",
      description: "The JSON Schema of executors.json (draft 2020-12), for editors and forms.",
      params: z.object({}).strict(),
      result: z.record(z.string(), z.unknown()),
      handler: () => executorsJsonSchema(),
    }),
    defineMethod({
      name: "executors.check",
      description:
        "Validate an executors document: errors and warnings naming label, key and value; the normalized entries and each one resolved with defaults.",
      params: z.object(sourceParams).strict(),
      result: z.object({
        ok: z.boolean(),
        errors: z.array(issue),
        warnings: z.array(issue),
        executors: z.record(z.string(), z.record(z.string(), z.unknown())),
        resolved: z.record(z.string(), z.record(z.string(), z.unknown())),
      }),
      handler: (p) => {
        const { json } = loadSource(p);
        const res = checkExecutors(json);
        const resolved = Object.fromEntries(
          Object.entries(res.executors).map(([label, e]) => [
            label,
            resolveExecutor(label, e) as unknown as Record<string, unknown>,
          ]),
        );
        return { ...res, resolved };
      },
    }),
    defineMethod({
      name: "executors.explain",
      description: "What each key means, and for a document what each of its pools must provide.",
      params: z
        .object({
          ...sourceParams,
          local: z.object({ python: z.string(), parsl: z.string() }).optional(),
        })
        .strict(),
      result: z.object({
        keys: z.array(z.record(z.string(), z.unknown())),
        pools: z.array(z.record(z.string(), z.unknown())),
        text: z.string(),
      }),
      handler: (p) => {
        const json =
          p.path === undefined && p.executors === undefined ? undefined : loadSource(p).json;
        return {
          keys: explainKeys() as unknown as Array<Record<string, unknown>>,
          pools:
            json === undefined
              ? []
              : (explainPools(json, p.local) as unknown as Array<Record<string, unknown>>),
          text: explainText(json, p.local),
        };
      },
    }),
  ];
}
