/**
 * What the review page needs from the executors service: the JSON Schema of the file, the
 * explanation of each key, the same check as `executors check`, and (over the RPC, because they
 * reach the pools) a completion preview and the preflight checks.
 */
import type { DaemonContext } from "../daemon/module.js";
import { describeValue } from "../util/validation.js";

export interface ValidationIssue {
  /** dotted path, label first: `cpu_executor.CORES_PER_WORKER` */
  path: string;
  message: string;
}

export interface CheckResult {
  ok: boolean;
  issues: ValidationIssue[];
}

export interface PreflightCheck {
  name: string;
  ok: boolean;
  message: string;
}

export interface ExecutorsSupport {
  /** JSON Schema of one executor entry (the value under a label), if known */
  entrySchema(): Record<string, unknown> | undefined;
  /** the explanation of each key, as `executors explain` prints it */
  explain(): Record<string, string>;
  /** the check `executors check` runs, issues in its words */
  check(doc: unknown): CheckResult;
  /** the values completion would fill in, per label, without changing anything */
  complete(doc: Record<string, unknown>, file: string): Promise<Record<string, Record<string, unknown>>>;
  /** reachability, versions and environment checks per label */
  preflight(doc: Record<string, unknown>, file: string): Promise<Record<string, PreflightCheck[]>>;
  /** which of complete/preflight the sidecar can do */
  features(): { complete: boolean; preflight: boolean };
}

/** Checks only the shape every executors file has: an object of labels, each an object. */
export function shapeCheck(doc: unknown): CheckResult {
  const issues: ValidationIssue[] = [];
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    issues.push({ path: "", message: `Expected the executors file to be an object of labels, got ${describeValue(doc)}` });
  } else {
    for (const [label, entry] of Object.entries(doc)) {
      if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
        issues.push({ path: label, message: `Expected \`${label}\` to be an object of settings, got ${describeValue(entry)}` });
      }
    }
  }
  return { ok: issues.length === 0, issues };
}

/** The support used when the executors service offers nothing more: shape checks only. */
export function basicSupport(ctx: Pick<DaemonContext, "call" | "hasMethod">): ExecutorsSupport {
  return {
    entrySchema: () => undefined,
    explain: () => ({}),
    check: shapeCheck,
    complete: async (doc, file) => (await ctx.call("executors.complete", { file, executors: doc, dry_run: true })) as Record<string, Record<string, unknown>>,
    preflight: async (doc, file) => (await ctx.call("executors.preflight", { file, executors: doc })) as Record<string, PreflightCheck[]>,
    features: () => ({ complete: ctx.hasMethod("executors.complete"), preflight: ctx.hasMethod("executors.preflight") }),
  };
}
