/**
 * Validates an executors.json document: every error and warning names the label, the key and
 * the value, and unknown keys are kept but reported.
 */
import { SidecarError } from "../errors.js";
import { describeValue } from "../util/validation.js";
import { KEY_NAMES, KEYS, keySpec, type ProviderName } from "./keys.js";
import { executorEntrySchema, LABEL_PATTERN } from "./schema.js";

export interface ExecutorsIssue {
  /** executor label, absent for file-level problems */
  label?: string;
  key?: string;
  value?: unknown;
  /** one line naming label, key, what was expected and what was got */
  message: string;
}

export interface ExecutorsCheck {
  ok: boolean;
  errors: ExecutorsIssue[];
  warnings: ExecutorsIssue[];
  /** the labels with their values normalized (numbers, booleans), unknown keys kept */
  executors: Record<string, Record<string, unknown>>;
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(
        d[i - 1]![j]! + 1,
        d[i]![j - 1]! + 1,
        d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
  }
  return d[a.length]![b.length]!;
}

/** The known key an unknown one was probably meant to be. */
export function suggestKey(unknown: string): string | undefined {
  const up = unknown.toUpperCase().replace(/-/g, "_");
  if (KEY_NAMES.has(up)) return up;
  let best: { name: string; d: number } | undefined;
  for (const k of KEYS) {
    const d = distance(up, k.name);
    if (d <= 2 && (!best || d < best.d)) best = { name: k.name, d };
  }
  return best?.name;
}

function where(label: string, key?: string): string {
  return key === undefined ? `\`${label}\`` : `\`${label}.${key}\``;
}

function checkEntry(label: string, entry: unknown, out: ExecutorsCheck): void {
  if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
    out.errors.push({
      label,
      value: entry,
      message: `Expected ${where(label)} to be an object of settings ({"POOL": ...}), got ${describeValue(entry)}`,
    });
    return;
  }
  const raw = entry as Record<string, unknown>;
  const res = executorEntrySchema.safeParse(raw);
  if (!res.success) {
    for (const issue of res.error.issues) {
      const key = issue.path.length > 0 ? String(issue.path[0]) : undefined;
      const value = key === undefined ? undefined : raw[key];
      const got = value === undefined ? "" : `, got ${describeValue(value)}`;
      out.errors.push({
        label,
        ...(key === undefined ? {} : { key }),
        ...(value === undefined ? {} : { value }),
        message: `${where(label, key)}: ${issue.message}${got}`,
      });
    }
  }
  const provider = (typeof raw.PROVIDER === "string" ? raw.PROVIDER : "local") as ProviderName;
  for (const [key, value] of Object.entries(raw)) {
    const spec = keySpec(key);
    if (!spec) {
      const hint = suggestKey(key);
      out.warnings.push({
        label,
        key,
        value,
        message: `Unknown key ${where(label, key)} (kept as it is)${hint ? `; did you mean \`${hint}\`?` : ""}`,
      });
    } else if (spec.deprecated) {
      out.warnings.push({
        label,
        key,
        value,
        message: `${where(label, key)} is ignored: ${spec.deprecated}`,
      });
    } else if (spec.providers && !spec.providers.includes(provider)) {
      out.warnings.push({
        label,
        key,
        value,
        message: `${where(label, key)} is ignored with PROVIDER ${provider} (it is used with ${spec.providers.join(" or ")})`,
      });
    }
  }
  if (res.success) {
    out.executors[label] = res.data as Record<string, unknown>;
    const e = res.data as Record<string, unknown>;
    if (
      typeof e.INIT_BLOCKS === "number" &&
      typeof e.MAX_BLOCKS === "number" &&
      e.INIT_BLOCKS > e.MAX_BLOCKS
    ) {
      out.warnings.push({
        label,
        key: "INIT_BLOCKS",
        value: raw.INIT_BLOCKS,
        message: `${where(label, "INIT_BLOCKS")} (${e.INIT_BLOCKS}) is more than MAX_BLOCKS (${e.MAX_BLOCKS}): Parsl starts them all, then scales in`,
      });
    }
    if (e.RESOLVER === "parallelworks" && e.SSH_TARGET !== undefined) {
      out.warnings.push({
        label,
        key: "SSH_TARGET",
        value: raw.SSH_TARGET,
        message: `${where(label, "SSH_TARGET")} is used as it is; RESOLVER parallelworks only fills HOST_IP and HOST_USER`,
      });
    }
  }
}

/** Check a parsed executors.json document. Never throws. */
export function checkExecutors(json: unknown): ExecutorsCheck {
  const out: ExecutorsCheck = { ok: false, errors: [], warnings: [], executors: {} };
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    out.errors.push({
      value: json,
      message: `Expected executors.json to be an object whose keys are executor labels, got ${describeValue(json)}`,
    });
    return out;
  }
  const labels = Object.keys(json).filter((k) => k !== "$schema");
  if (labels.length === 0)
    out.errors.push({
      message:
        'executors.json has no executors: add at least one label, e.g. {"cpu_executor": {"POOL": "mycluster"}}',
    });
  const schemaRef = (json as Record<string, unknown>).$schema;
  if (schemaRef !== undefined && typeof schemaRef !== "string")
    out.errors.push({
      key: "$schema",
      value: schemaRef,
      message: `Expected \`$schema\` to be a string, got ${describeValue(schemaRef)}`,
    });
  for (const label of labels) {
    if (!LABEL_PATTERN.test(label)) {
      out.errors.push({
        label,
        message: `Executor label ${describeValue(label)} is not usable: a label may hold letters, digits, \`_\`, \`.\` and \`-\`, and starts with a letter or digit`,
      });
      continue;
    }
    checkEntry(label, (json as Record<string, unknown>)[label], out);
  }
  out.ok = out.errors.length === 0;
  return out;
}

/** Parse JSON text, turning a syntax error into one naming the line and column. */
export function parseExecutorsText(text: string, file = "executors.json"): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const msg = (err as Error).message;
    const pos = /position (\d+)/.exec(msg);
    let at = "";
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      const line = before.split("\n").length;
      at = ` at line ${line}, column ${before.length - before.lastIndexOf("\n")}`;
    }
    throw new SidecarError("EXECUTORS_INVALID", `${file} is not valid JSON${at}: ${msg}`, {
      cause: err,
      data: { file },
    });
  }
}

/** Check and throw one EXECUTORS_INVALID error listing every problem. */
export function assertExecutors(json: unknown, file = "executors.json"): ExecutorsCheck {
  const res = checkExecutors(json);
  if (!res.ok) {
    throw new SidecarError(
      "EXECUTORS_INVALID",
      `${file} is invalid: ${res.errors.map((e) => e.message).join("; ")}`,
      {
        data: {
          file,
          errors: res.errors.map(({ label, key, message }) => ({ label, key, message })),
        },
      },
    );
  }
  return res;
}
