/**
 * What the review page needs from the executors service: the JSON Schema of one entry, the
 * explanation of each key and what each pool must provide (as `executors explain`), the very
 * check `executors check` runs, a preview of what completion fills in, and the preflight checks
 * (over the RPC, because they reach the pools).
 */
import { z } from "zod";
import type { DaemonContext } from "../daemon/module.js";
import { checkExecutors, COMPLETED_KEYS, executorEntrySchema, explainKeys, explainPools, GROUP_TITLES, resolveExecutor, type ResolvedExecutor } from "../executors/index.js";
import { localVersions } from "../executors/versions.js";

export interface ValidationIssue {
  /** dotted path, label first: `cpu_executor.CORES_PER_WORKER`; "" for the whole file */
  path: string;
  message: string;
  severity: "error" | "warning";
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

/** One value completion fills in: known now (`value`), or how it is found at start (`note`). */
export interface CompletedValue {
  key: string;
  value: unknown;
  note: string;
}

export interface ExecutorsSupport {
  /** JSON Schema of one executor entry (the value under a label) */
  entrySchema(): Record<string, unknown> | undefined;
  /** per key: description, default, providers, group... (the text of `executors explain`) */
  explain(): Record<string, Record<string, unknown>>;
  groups(): Record<string, string>;
  /** per label: what the pool must provide */
  pools(doc: unknown): Record<string, string[]>;
  /** the check `executors check` runs, issues in its words */
  check(doc: unknown): CheckResult;
  /** per label: what completion will fill in, without opening anything */
  complete(doc: Record<string, unknown>): Promise<Record<string, CompletedValue[]>>;
  /** per label: reachability, versions and environment checks */
  preflight(doc: Record<string, unknown>, file: string): Promise<Record<string, PreflightCheck[]>>;
  features(): { complete: boolean; preflight: boolean };
}

/** `executors check` issues → paths the form can put beside their fields. */
export function checkForPage(doc: unknown): CheckResult {
  const res = checkExecutors(doc);
  const path = (i: { label?: string; key?: string }): string => [i.label, i.key].filter((p) => p !== undefined).join(".");
  return {
    ok: res.ok,
    issues: [...res.errors.map((i) => ({ path: path(i), message: i.message, severity: "error" as const })), ...res.warnings.map((i) => ({ path: path(i), message: i.message, severity: "warning" as const }))],
  };
}

/** What completion will write for one executor: the values known now, and how the others are found. */
export function completionPreview(r: ResolvedExecutor): CompletedValue[] {
  const where = r.isLocal ? "this machine" : `\`${r.target}\``;
  const relay = r.provider !== "local";
  const notes: Record<(typeof COMPLETED_KEYS)[number], { value: unknown; note: string }> = {
    HOST_IP: { value: r.hostIp ?? (r.isLocal ? "127.0.0.1" : null), note: r.resolver === "parallelworks" ? "asked from Parallel Works when the run starts" : `address of ${where} from ~/.ssh/config or DNS` },
    HOST_USER: { value: r.hostUser, note: r.isLocal ? "you" : `the SSH user of ${where} (~/.ssh/config or your login name)` },
    INTERCHANGE_PORT: { value: r.interchangePort, note: "a free port on 127.0.0.1 here, picked when the run starts" },
    WORKER_PORT: { value: r.workerPort, note: relay ? "a free port of the relay on the head node, picked when the run starts" : "a free port on the head node's loopback, picked when the run starts" },
    DIAL_ADDRESS: { value: r.dialAddress ?? (relay ? null : "127.0.0.1"), note: relay ? "the head node's cluster-side address, where compute nodes reach the relay" : "the head node's loopback: workers start there" },
    TUNNEL_ID: { value: r.tunnelId, note: r.isLocal ? "no tunnel: workers dial this machine directly" : "the id of the tunnel opened for this executor" },
  };
  return COMPLETED_KEYS.map((key) => ({ key, ...notes[key] }));
}

export function executorsSupport(ctx: Pick<DaemonContext, "call" | "hasMethod">): ExecutorsSupport {
  let schema: Record<string, unknown> | undefined;
  let explained: Record<string, Record<string, unknown>> | undefined;
  let versions: Promise<{ python: string; parsl: string } | undefined> | undefined;
  return {
    entrySchema: () => (schema ??= z.toJSONSchema(executorEntrySchema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>),
    explain: () => (explained ??= Object.fromEntries(explainKeys().map((k) => [k.name, { ...k }]))),
    groups: () => ({ ...GROUP_TITLES }),
    pools: (doc) => Object.fromEntries(explainPools(doc).map((p) => [p.label, p.requirements])),
    check: checkForPage,
    complete: async (doc) => {
      const res = checkExecutors(doc);
      return Object.fromEntries(Object.entries(res.executors).map(([label, e]) => [label, completionPreview(resolveExecutor(label, e))]));
    },
    preflight: async (doc) => {
      versions ??= localVersions().then((v) => (v?.parsl ? { python: v.python, parsl: v.parsl } : undefined));
      const local = await versions;
      const res = (await ctx.call("executors.preflight", { executors: doc, raise: false, ...(local ? { local } : {}) })) as { executors: Array<{ label: string; checks: PreflightCheck[] }> };
      return Object.fromEntries(res.executors.map((e) => [e.label, e.checks]));
    },
    features: () => ({ complete: true, preflight: ctx.hasMethod("executors.preflight") }),
  };
}
