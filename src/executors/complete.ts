/**
 * Completion: for each executor, resolve the pool, learn HOST_IP/HOST_USER, pick the
 * interchange port here, open the reverse tunnel (and relay) and fill the pool-side port and
 * address workers dial. All or nothing: a failure closes what this call opened.
 */
import { userInfo } from "node:os";
import getPort from "get-port";
import { SidecarError, toSidecarError } from "../errors.js";
import type { HostLease, Hosts } from "../ssh/host.js";
import { assertExecutors } from "./check.js";
import { COMPLETED_KEYS } from "./keys.js";
import { resolveExecutor, targetOf } from "./resolve.js";
import { resolverFor, type PoolResolver } from "./resolvers/resolver.js";
import type { WorkerTunnels } from "./tunnel-port.js";

export interface CompleteRequest {
  json: unknown;
  file: string;
  labels?: string[] | undefined;
  owner: string;
  /** keep an entry's tunnel when TUNNEL_ID names an open one for the same pool and port */
  reuse: boolean;
  signal?: AbortSignal | undefined;
  progress?: (label: string, message: string) => void;
}

export interface CompletedTunnel {
  label: string;
  tunnel_id: string | null;
  interchange_port: number;
  dial_address: string;
  worker_port: number;
  reused: boolean;
}

export interface CompleteOutcome {
  executors: Record<string, unknown>;
  tunnels: CompletedTunnel[];
  warnings: string[];
  /** tunnels this call opened (the caller records their owner) */
  opened: string[];
}

export interface CompleteDeps {
  hosts: Hosts;
  tunnels: WorkerTunnels | undefined;
  resolver?: (name: string) => PoolResolver;
}

/** Ask the pool who we are and which address we reached it on (`SSH_CONNECTION`'s server part). */
async function whoAmI(
  deps: CompleteDeps,
  label: string,
  target: string,
  transport: "auto" | "openssh" | "ssh2" | undefined,
): Promise<{ user: string; ip: string }> {
  if (target === "local") return { user: userInfo().username, ip: "127.0.0.1" };
  let lease: HostLease;
  try {
    lease = await deps.hosts.acquire(
      target,
      `executors:complete:${label}`,
      transport ? { transport } : {},
    );
  } catch (err) {
    const e = toSidecarError(err, "POOL_UNREACHABLE");
    throw new SidecarError(
      "POOL_UNREACHABLE",
      `Executor \`${label}\`: cannot reach pool \`${target}\`: ${e.message}`,
      { cause: err, data: { label, target, cause_code: e.code } },
    );
  }
  try {
    const r = await lease.exec('printf "%s\\n%s\\n" "$(id -un)" "${SSH_CONNECTION:-}"', {
      timeoutMs: 30_000,
    });
    if (r.exitCode !== 0)
      throw new SidecarError(
        "POOL_UNREACHABLE",
        `Executor \`${label}\`: a command on pool \`${target}\` failed (exit ${String(r.exitCode)}): ${r.stderr.trim()}`,
        { data: { label, target } },
      );
    const [user = "", conn = ""] = r.stdout.trim().split("\n");
    const ip = conn.trim().split(/\s+/)[2] ?? "";
    return { user: user.trim(), ip };
  } finally {
    lease.release();
  }
}

/** Put the completed keys into an entry, replacing them where they are, appending the others. */
function fill(
  entry: Record<string, unknown>,
  values: Partial<Record<(typeof COMPLETED_KEYS)[number], unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...entry };
  for (const key of COMPLETED_KEYS) {
    if (!(key in values)) continue;
    const v = values[key];
    if (v === null || v === undefined) delete out[key];
    else out[key] = v;
  }
  return out;
}

export async function completeExecutors(
  req: CompleteRequest,
  deps: CompleteDeps,
): Promise<CompleteOutcome> {
  const checked = assertExecutors(req.json, req.file);
  const raw = req.json as Record<string, unknown>;
  const labels = req.labels ?? Object.keys(checked.executors);
  for (const l of labels) {
    if (!(l in checked.executors))
      throw new SidecarError(
        "EXECUTORS_INVALID",
        `No executor \`${l}\` in ${req.file}; it has ${Object.keys(checked.executors).join(", ")}`,
        { data: { label: l } },
      );
  }
  const out: Record<string, unknown> = { ...raw };
  const result: CompleteOutcome = {
    executors: out,
    tunnels: [],
    warnings: checked.warnings.map((w) => w.message),
    opened: [],
  };
  const usedPorts = new Set<number>();
  try {
    for (const label of labels) {
      req.signal?.throwIfAborted();
      let entry = { ...(raw[label] as Record<string, unknown>) };
      const normalized = { ...checked.executors[label]! };
      if (normalized.RESOLVER === "parallelworks") {
        req.progress?.(label, `asking Parallel Works for pool ${String(normalized.POOL)}`);
        const resolver = (deps.resolver ?? resolverFor)("parallelworks");
        const pool = await resolver
          .resolve(String(normalized.POOL), {
            ...(req.signal ? { signal: req.signal } : {}),
            onProgress: (m) => req.progress?.(label, m),
          })
          .catch((err: unknown) => {
            const e = toSidecarError(err, "RESOLVER_FAILED");
            throw new SidecarError(e.code, `Executor \`${label}\`: ${e.message}`, {
              cause: err,
              data: { label },
            });
          });
        normalized.HOST_IP = pool.hostIp;
        if (pool.hostUser) normalized.HOST_USER = pool.hostUser;
        entry = fill(entry, {
          HOST_IP: pool.hostIp,
          ...(pool.hostUser ? { HOST_USER: pool.hostUser } : {}),
        });
      }
      const r = resolveExecutor(label, normalized);
      const target = targetOf(normalized);
      req.progress?.(label, `connecting to ${target}`);
      const who = await whoAmI(
        deps,
        label,
        target,
        normalized.SSH_TRANSPORT as "auto" | "openssh" | "ssh2" | undefined,
      );
      const hostIp =
        normalized.RESOLVER === "parallelworks"
          ? String(normalized.HOST_IP)
          : who.ip || String(normalized.HOST_IP ?? "");

      const existing = r.tunnelId ? deps.tunnels?.get(r.tunnelId) : undefined;
      if (
        req.reuse &&
        existing &&
        existing.target === target &&
        existing.localPort === r.interchangePort
      ) {
        usedPorts.add(existing.localPort);
        entry = fill(entry, {
          HOST_IP: hostIp || null,
          HOST_USER: who.user,
          INTERCHANGE_PORT: existing.localPort,
          WORKER_PORT: existing.dialPort,
          DIAL_ADDRESS: existing.dialHost,
          TUNNEL_ID: existing.id,
        });
        result.tunnels.push({
          label,
          tunnel_id: existing.id,
          interchange_port: existing.localPort,
          dial_address: existing.dialHost,
          worker_port: existing.dialPort,
          reused: true,
        });
        out[label] = entry;
        continue;
      }
      const port = await getPort({ host: "127.0.0.1", exclude: [...usedPorts] });
      usedPorts.add(port);
      if (r.isLocal) {
        entry = fill(entry, {
          HOST_IP: "127.0.0.1",
          HOST_USER: who.user,
          INTERCHANGE_PORT: port,
          WORKER_PORT: port,
          DIAL_ADDRESS: "127.0.0.1",
          TUNNEL_ID: null,
        });
        result.tunnels.push({
          label,
          tunnel_id: null,
          interchange_port: port,
          dial_address: "127.0.0.1",
          worker_port: port,
          reused: false,
        });
      } else {
        if (!deps.tunnels)
          throw new SidecarError(
            "TUNNEL_FAILED",
            `Executor \`${label}\`: this sidecar has no tunnels service, so pool \`${target}\` cannot reach the interchange`,
          );
        req.progress?.(
          label,
          `opening the worker tunnel${r.provider === "local" ? "" : " and the head-node relay"}`,
        );
        const t = await deps.tunnels
          .open({ target, localPort: port, relay: r.provider !== "local", owner: req.owner, label })
          .catch((err: unknown) => {
            const e = toSidecarError(err, "TUNNEL_FAILED");
            throw new SidecarError(
              e.code,
              `Executor \`${label}\`: cannot open the worker tunnel to pool \`${target}\`: ${e.message}`,
              { cause: err, data: { label, target } },
            );
          });
        result.opened.push(t.id);
        entry = fill(entry, {
          HOST_IP: hostIp || null,
          HOST_USER: who.user,
          INTERCHANGE_PORT: port,
          WORKER_PORT: t.dialPort,
          DIAL_ADDRESS: t.dialHost,
          TUNNEL_ID: t.id,
        });
        result.tunnels.push({
          label,
          tunnel_id: t.id,
          interchange_port: port,
          dial_address: t.dialHost,
          worker_port: t.dialPort,
          reused: false,
        });
      }
      out[label] = entry;
    }
  } catch (err) {
    for (const id of result.opened) await deps.tunnels?.close(id).catch(() => undefined);
    throw err;
  }
  return result;
}

/** Indentation of a JSON text (the width of its first indented line), default 4. */
export function detectIndent(text: string): number | string {
  const m = /\n([ \t]+)"/.exec(text);
  if (!m) return 4;
  return m[1]!.includes("\t") ? "\t" : m[1]!.length;
}
