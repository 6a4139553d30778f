/**
 * What the review page needs from the executors service: the JSON Schema of one entry, the
 * explanation of each key and what each pool must provide (as `executors explain`), the very
 * check `executors check` runs, a preview of what completion fills in, and the preflight checks
 * (over the RPC, because they reach the pools).
 */
import { z } from "zod";
import type { DaemonContext } from "../rpc/service.js";
import {
  checkExecutors,
  COMPLETED_KEYS,
  executorEntrySchema,
  explainKeys,
  explainPools,
  GROUP_TITLES,
  resolveExecutor,
  type ResolvedExecutor,
} from "../executors/index.js";
import { localPython, localVersions } from "../executors/versions.js";
import { SidecarError } from "../errors.js";
import { loadConfig, resolveTarget } from "../ssh/config.js";

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
  /** not failed, just not possible before the run starts (the tunnel opens at completion) */
  pending?: boolean;
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
  const path = (i: { label?: string; key?: string }): string =>
    [i.label, i.key].filter((p) => p !== undefined).join(".");
  return {
    ok: res.ok,
    issues: [
      ...res.errors.map((i) => ({ path: path(i), message: i.message, severity: "error" as const })),
      ...res.warnings.map((i) => ({
        path: path(i),
        message: i.message,
        severity: "warning" as const,
      })),
    ],
  };
}

/** Where ~/.ssh/config says a target logs in; undefined when it cannot be read. */
export type SshLookup = (
  target: string,
) => { hostName: string; user: string; fromConfig: boolean } | undefined;

/** A lookup through the user's ssh config, read once. */
export function sshConfigLookup(): SshLookup {
  let loaded: ReturnType<typeof loadConfig> | undefined;
  return (target) => {
    try {
      loaded ??= loadConfig();
      const h = resolveTarget(target, loaded);
      return { hostName: h.hostName, user: h.user, fromConfig: h.matchedSection };
    } catch {
      return undefined;
    }
  };
}

/** What completion will write for one executor: the values known now, and how the others are found. */
export function completionPreview(
  r: ResolvedExecutor,
  lookup: SshLookup = () => undefined,
): CompletedValue[] {
  const where = r.isLocal ? "this machine" : `\`${r.target}\``;
  const ssh = r.isLocal || r.resolver !== "none" ? undefined : lookup(r.target);
  const relay = r.provider !== "local";
  const notes: Record<(typeof COMPLETED_KEYS)[number], { value: unknown; note: string }> = {
    HOST_IP: {
      value: r.hostIp ?? (r.isLocal ? "127.0.0.1" : (ssh?.hostName ?? null)),
      note:
        r.resolver === "parallelworks"
          ? "asked from Parallel Works when the run starts"
          : ssh
            ? ssh.fromConfig
              ? `HostName of ${where} in ~/.ssh/config`
              : `the host of ${where}, resolved by DNS when connecting`
            : `address of ${where} from ~/.ssh/config or DNS`,
    },
    HOST_USER: {
      value: r.hostUser ?? ssh?.user ?? null,
      note: r.isLocal
        ? "you"
        : ssh?.fromConfig
          ? `User of ${where} in ~/.ssh/config (or your login name)`
          : `the SSH user of ${where} (your login name unless the target names one)`,
    },
    INTERCHANGE_PORT: {
      value: r.interchangePort,
      note: "a free port on 127.0.0.1 here, picked when the run starts",
    },
    WORKER_PORT: {
      value: r.workerPort,
      note: relay
        ? "a free port of the relay on the head node, picked when the run starts"
        : "a free port on the head node's loopback, picked when the run starts",
    },
    DIAL_ADDRESS: {
      value: r.dialAddress ?? (relay ? null : "127.0.0.1"),
      note: relay
        ? "the head node's cluster-side address, where compute nodes reach the relay"
        : "the head node's loopback: workers start there",
    },
    TUNNEL_ID: {
      value: r.tunnelId,
      note: r.isLocal
        ? "no tunnel: workers dial this machine directly"
        : "the id of the tunnel opened for this executor",
    },
  };
  return COMPLETED_KEYS.map((key) => ({ key, ...notes[key] }));
}

/** Before a run the worker tunnel cannot be open yet: that check is pending, not failed. */
export function reviewCheck(
  c: PreflightCheck & { code?: string },
  entry: Record<string, unknown>,
): PreflightCheck {
  const out: PreflightCheck = { name: c.name, ok: c.ok, message: c.message };
  if (
    c.name === "tunnel" &&
    !c.ok &&
    c.code === "TUNNEL_NOT_FOUND" &&
    entry.TUNNEL_ID === undefined
  ) {
    return {
      ...out,
      ok: true,
      pending: true,
      message:
        "opened when the run starts: completion picks the ports and opens the tunnel after Accept",
    };
  }
  return out;
}

export function executorsSupport(ctx: Pick<DaemonContext, "call" | "hasMethod">): ExecutorsSupport {
  let schema: Record<string, unknown> | undefined;
  let explained: Record<string, Record<string, unknown>> | undefined;
  let versions: { python: string; parsl: string } | undefined;
  return {
    entrySchema: () =>
      (schema ??= z.toJSONSchema(executorEntrySchema, {
        io: "input",
        unrepresentable: "any",
      }) as Record<string, unknown>),
    explain: () => (explained ??= Object.fromEntries(explainKeys().map((k) => [k.name, { ...k }]))),
    groups: () => ({ ...GROUP_TITLES }),
    pools: (doc) => Object.fromEntries(explainPools(doc).map((p) => [p.label, p.requirements])),
    check: checkForPage,
    complete: async (doc) => {
      const res = checkExecutors(doc);
      const lookup = sshConfigLookup();
      return Object.fromEntries(
        Object.entries(res.executors).map(([label, e]) => [
          label,
          completionPreview(resolveExecutor(label, e), lookup),
        ]),
      );
    },
    preflight: async (doc) => {
      if (!versions) {
        const v = await localVersions();
        if (!v?.parsl) {
          throw new SidecarError(
            "VERSION_SKEW",
            `Cannot read the Python and Parsl versions of this machine's \`${localPython()}\`${v?.parslError ? ` (${v.parslError})` : ""}; start the sidecar with PARSL_SIDECAR_PYTHON set to the workflow's interpreter`,
          );
        }
        versions = { python: v.python, parsl: v.parsl };
      }
      const res = (await ctx.call("executors.preflight", {
        executors: doc,
        raise: false,
        local: versions,
      })) as {
        executors: Array<{ label: string; checks: Array<PreflightCheck & { code?: string }> }>;
      };
      return Object.fromEntries(
        res.executors.map((e) => [
          e.label,
          e.checks.map((c) => reviewCheck(c, (doc[e.label] ?? {}) as Record<string, unknown>)),
        ]),
      );
    },
    features: () => ({ complete: true, preflight: ctx.hasMethod("executors.preflight") }),
  };
}
