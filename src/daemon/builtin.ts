/** The sidecar.* methods: ping, status, describe, shutdown, subscribe, echo. */
import { readdirSync } from "node:fs";
import { z } from "zod";
import { PROTOCOL_VERSION } from "../rpc/envelope.js";
import type { PublishedLimits } from "../rpc/limits.js";
import { defineMethod, type Registry } from "../rpc/registry.js";
import type { RpcServer } from "../rpc/server.js";
import { VERSION } from "../version.js";
import { sleep } from "../util/timeout.js";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";

const mb = (bytes: number): number => Math.round(bytes / 104857.6) / 10;

/** What a long run watches for leaks: the process's memory by kind and its open descriptors. */
function memory(): {
  rss_mb: number;
  heap_used_mb: number;
  heap_total_mb: number;
  external_mb: number;
  array_buffers_mb: number;
  fds: number | null;
} {
  const m = process.memoryUsage();
  let fds: number | null = null;
  try {
    fds = readdirSync("/proc/self/fd").length - 1; // less the one readdir itself opened
  } catch {
    // not Linux: no /proc
  }
  return {
    rss_mb: mb(m.rss),
    heap_used_mb: mb(m.heapUsed),
    heap_total_mb: mb(m.heapTotal),
    external_mb: mb(m.external),
    array_buffers_mb: mb(m.arrayBuffers),
    fds,
  };
}

export function builtinModule(
  ctx: DaemonContext,
  deps: {
    registry: Registry;
    server: () => RpcServer;
    endpoint: () => string;
    /** as in the connection file, for a client that did not read it */
    limits: PublishedLimits;
    statuses: () => Record<string, unknown>;
  },
): ServiceModule {
  const started = Date.now();
  return {
    name: "sidecar",
    methods: [
      defineMethod({
        name: "sidecar.ping",
        description: "Answers at once; for liveness checks and latency measurement.",
        params: z.object({}).strict(),
        result: z.object({ pong: z.literal(true), ts: z.number() }),
        handler: () => ({ pong: true as const, ts: Date.now() }),
      }),
      defineMethod({
        name: "sidecar.status",
        description:
          "Pid, version, uptime, endpoint, RPC counters and each service's counts (tunnels, jobs, transfers, ...).",
        params: z.object({}).strict(),
        result: z.object({
          pid: z.number(),
          version: z.string(),
          protocol_version: z.number(),
          uptime_s: z.number(),
          endpoint: z.string(),
          connection_file: z.string(),
          rpc: z.record(z.string(), z.unknown()),
          memory: z.object({
            rss_mb: z.number(),
            heap_used_mb: z.number(),
            heap_total_mb: z.number(),
            external_mb: z.number(),
            array_buffers_mb: z.number(),
            fds: z.number().nullable(),
          }),
          services: z.record(z.string(), z.unknown()),
        }),
        handler: () => {
          const server = deps.server();
          return {
            pid: process.pid,
            version: VERSION,
            protocol_version: PROTOCOL_VERSION,
            uptime_s: Math.round((Date.now() - started) / 100) / 10,
            endpoint: deps.endpoint(),
            connection_file: ctx.connectionFile,
            rpc: {
              ...server.stats,
              connections: server.connections,
              subscribers: server.subscriberCount,
            },
            memory: memory(),
            services: deps.statuses(),
          };
        },
      }),
      defineMethod({
        name: "sidecar.describe",
        description:
          "Every method with its params and result as JSON Schema, and the limits on a request's size.",
        params: z.object({}).strict(),
        result: z.object({
          protocol_version: z.number(),
          version: z.string(),
          limits: z.object({ message_bytes: z.number(), pending_bytes: z.number() }),
          methods: z.array(
            z.object({
              name: z.string(),
              description: z.string(),
              params: z.unknown(),
              result: z.unknown(),
            }),
          ),
        }),
        handler: () => ({
          protocol_version: PROTOCOL_VERSION,
          version: VERSION,
          limits: deps.limits,
          methods: deps.registry.describe(),
        }),
      }),
      defineMethod({
        name: "sidecar.shutdown",
        description:
          "Shuts the sidecar down cleanly after replying: in-flight calls finish or fail, everything it holds is closed.",
        params: z.object({ reason: z.string().optional() }).strict(),
        result: z.object({ ok: z.literal(true) }),
        handler: (p) => {
          ctx.requestShutdown(p.reason ?? "sidecar.shutdown called");
          return { ok: true as const };
        },
      }),
      defineMethod({
        name: "sidecar.subscribe",
        description:
          "Receive events whose topic starts with one of `topics` (all when empty) as signed `event` messages, for a lease the client renews by calling again.",
        params: z
          .object({ topics: z.array(z.string()).default([]), history: z.boolean().default(false) })
          .strict(),
        result: z.object({
          lease_ms: z.number(),
          history: z.array(
            z.object({
              topic: z.string(),
              ts: z.number(),
              data: z.record(z.string(), z.unknown()),
            }),
          ),
        }),
        handler: (p, call) => ({
          lease_ms: deps.server().subscribe(call.client, p.topics, call.requestId),
          history: p.history ? ctx.events.history(p.topics) : [],
        }),
      }),
      defineMethod({
        name: "sidecar.unsubscribe",
        description: "Stop receiving events.",
        params: z.object({}).strict(),
        result: z.object({ ok: z.literal(true) }),
        handler: (_p, call) => {
          deps.server().unsubscribe(call.client);
          return { ok: true as const };
        },
      }),
      defineMethod({
        name: "sidecar.echo",
        description:
          "Diagnostics: returns `value` after `delay_ms`, sending `progress_steps` progress messages on the way.",
        params: z
          .object({
            value: z.unknown().optional(),
            delay_ms: z.number().int().min(0).max(600_000).default(0),
            progress_steps: z.number().int().min(0).max(1000).default(0),
          })
          .strict(),
        result: z.object({ value: z.unknown() }),
        handler: async (p, call) => {
          const steps = p.progress_steps;
          for (let i = 1; i <= Math.max(steps, 1); i++) {
            if (p.delay_ms > 0) await sleep(p.delay_ms / Math.max(steps, 1));
            if (steps > 0) call.progress({ step: i, of: steps });
          }
          return { value: p.value ?? null };
        },
      }),
    ],
  };
}
