/** Turns zod issues into messages that name the field, the expected form and the value got. */
import type { z } from "zod";
import { SidecarError, type ErrorCode } from "../errors.js";

export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value);
  }
  if (shown.length > 80) shown = `${shown.slice(0, 77)}...`;
  const kind = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
  return `\`${shown}\` (${kind})`;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = input;
  for (const key of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

export function formatPath(prefix: string, path: readonly PropertyKey[]): string {
  const parts = [prefix, ...path.map(String)].filter((p) => p !== "");
  return parts.join(".") || "value";
}

/** One line per issue: ``Expected `ssh.port` to be ..., got `"abc"` (string)``. */
export function formatZodIssues(error: z.ZodError, input: unknown, prefix = ""): string[] {
  return error.issues.map((issue) => {
    const field = formatPath(prefix, issue.path);
    const got = describeValue(valueAt(input, issue.path));
    if (issue.code === "unrecognized_keys") {
      return `Unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `\`${k}\``).join(", ")} in \`${field}\``;
    }
    if (issue.code === "invalid_type" && valueAt(input, issue.path) === undefined) {
      return `Expected \`${field}\` (${issue.expected}), but it is missing`;
    }
    return `Expected \`${field}\` to be valid: ${issue.message}; got ${got}`;
  });
}

/** Parse with a schema or throw a SidecarError whose message lists every problem. */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  input: unknown,
  opts: { code?: ErrorCode; prefix?: string; what?: string } = {},
): z.output<S> {
  const res = schema.safeParse(input);
  if (res.success) return res.data;
  const lines = formatZodIssues(res.error, input, opts.prefix ?? "");
  const head = opts.what ? `Invalid ${opts.what}: ` : "";
  throw new SidecarError(opts.code ?? "INVALID_PARAMS", head + lines.join("; "), {
    data: {
      issues: res.error.issues.map((i) => ({
        path: [opts.prefix ?? "", ...i.path.map(String)].filter(Boolean).join("."),
        message: i.message,
      })),
    },
  });
}
