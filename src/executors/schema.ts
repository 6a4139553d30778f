/** The zod schema of executors.json (built from the key table) and its JSON Schema. */
import { z } from "zod";
import { KEYS, type KeySpec } from "./keys.js";

/** Executor labels become Parsl labels and directory names. */
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function keySchema(k: KeySpec): z.ZodType {
  let description = k.description;
  if (k.default !== undefined) description += ` Default: ${k.default}.`;
  if (k.providers) description += ` Used with PROVIDER ${k.providers.join(" or ")}.`;
  if (k.deprecated) description += ` Deprecated: ${k.deprecated}.`;
  const meta: Record<string, unknown> = { description, "x-group": k.group };
  if (k.example !== undefined) meta.examples = [k.example];
  if (k.deprecated) meta.deprecated = true;
  return k.schema.optional().meta(meta);
}

const shape: Record<string, z.ZodType> = Object.fromEntries(
  KEYS.map((k) => [k.name, keySchema(k)]),
);

/** One executor: every known key optional, unknown keys kept (and warned about by check). */
export const executorEntrySchema = z
  .looseObject(shape)
  .superRefine((entry, ctx) => {
    const e = entry as Record<string, unknown>;
    if (e.POOL === undefined && e.SSH_TARGET === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["POOL"],
        message: "each executor needs POOL (a pool name or ~/.ssh/config alias) or SSH_TARGET",
      });
    }
    const min = e.MIN_BLOCKS as number | undefined;
    const max = e.MAX_BLOCKS as number | undefined;
    if (typeof min === "number" && typeof max === "number" && min > max) {
      ctx.addIssue({
        code: "custom",
        path: ["MIN_BLOCKS"],
        message: `MIN_BLOCKS must not exceed MAX_BLOCKS (${max})`,
      });
    }
  })
  .describe("One executor (a Parsl HighThroughputExecutor) and the pool its workers run on.");

/** The whole file: executor labels at the top level (plus an optional `$schema` for editors). */
export const executorsFileSchema = z
  .object({
    $schema: z.string().optional().describe("Path or URL of this JSON Schema, for editors."),
  })
  .catchall(executorEntrySchema)
  .superRefine((file, ctx) => {
    const labels = Object.keys(file).filter((k) => k !== "$schema");
    if (labels.length === 0)
      ctx.addIssue({
        code: "custom",
        path: [],
        message:
          'no executors: add at least one label, e.g. {"cpu_executor": {"POOL": "mycluster"}}',
      });
    for (const label of labels) {
      if (!LABEL_PATTERN.test(label)) {
        ctx.addIssue({
          code: "custom",
          path: [label],
          message:
            "an executor label may hold letters, digits, `_`, `.` and `-`, and starts with a letter or digit",
        });
      }
    }
  })
  .meta({
    title: "parsl-sidecar executors.json",
    description:
      "Executors of a Parsl workflow: each top-level key is an executor label, its value says which pool runs that executor's workers and how. See `parsl-sidecar executors explain`.",
  });

export type ExecutorEntryInput = z.input<typeof executorEntrySchema>;

/** JSON Schema (draft 2020-12) of executors.json, for editors and forms. */
export function executorsJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(executorsFileSchema, { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
}
