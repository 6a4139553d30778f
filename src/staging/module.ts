/** The staging module: `staging.transfer`, `staging.list_transfers` and `staging.log` over RPC. */
import { z } from "zod";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import { defineMethod } from "../rpc/registry.js";
import type { Hosts } from "../ssh/host.js";
import { StagingService } from "./service.js";

const transferResult = z.object({
  id: z.string(),
  src: z.string(),
  dst: z.string(),
  bytes: z.number(),
  files: z.number(),
  skipped: z.number(),
  duration_ms: z.number(),
  method: z.string(),
  sha256: z.string().optional(),
});

const record = z.object({
  id: z.string(),
  item: z.string().nullable(),
  src: z.string(),
  dst: z.string(),
  type: z.string(),
  state: z.enum(["queued", "running", "done", "failed"]),
  started_at: z.string(),
  bytes: z.number(),
  total_bytes: z.number(),
  files: z.number(),
  total_files: z.number(),
  skipped: z.number(),
  rate_bps: z.number(),
  duration_ms: z.number().nullable(),
  method: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
});

export interface StagingModuleDeps {
  /** SshConnections; without it pool paths (worker_path on a pool, ssh://) are refused */
  hosts?: Hosts | undefined;
}

export function stagingModule(
  ctx: DaemonContext,
  deps: StagingModuleDeps = {},
): ServiceModule & { service: StagingService } {
  const service = new StagingService({ hosts: deps.hosts, events: ctx.events, log: ctx.log });
  return {
    name: "staging",
    service,
    methods: [
      defineMethod({
        name: "staging.transfer",
        description:
          "Copy a file or directory from `src` to `dst` (file://, pw://, s3://, gs://, ssh://TARGET/path, or an absolute path on `host`), verified by size and checksum, written under a temporary name and renamed into place; identical files are skipped. Progress messages: {id, bytes, total_bytes, files, total_files, skipped, rate_bps}.",
        params: z
          .object({
            src: z.string().min(1),
            dst: z.string().min(1),
            type: z.enum(["file", "directory", "auto"]).default("auto"),
            cwd: z.string().min(1).optional(),
            host: z.string().min(1).optional(),
            item: z.string().optional(),
            owner: z.string().optional(),
          })
          .strict(),
        result: transferResult,
        handler: async (p, call) =>
          await service.transfer(p, (s) => call.progress({ ...s }), call.signal),
      }),
      defineMethod({
        name: "staging.list_transfers",
        description:
          "Transfers running, queued and recently finished, with their progress and errors.",
        params: z
          .object({ state: z.enum(["queued", "running", "done", "failed"]).optional() })
          .strict(),
        result: z.object({ transfers: z.array(record) }),
        handler: (p) => ({
          transfers: service.list().filter((r) => p.state === undefined || r.state === p.state),
        }),
      }),
      defineMethod({
        name: "staging.log",
        description:
          "Write a workflow's log record (log_app: app, args, paths, transfers) into the sidecar's log and publish it as a `staging.log` event.",
        params: z
          .object({
            level: z.enum(["debug", "info", "warn", "error"]).default("info"),
            message: z.string(),
            fields: z.record(z.string(), z.unknown()).default({}),
          })
          .strict(),
        result: z.object({ ok: z.literal(true) }),
        handler: (p) => {
          ctx.log[p.level]({ source: "workflow", ...p.fields }, p.message);
          ctx.events.emit("staging.log", { level: p.level, message: p.message, ...p.fields });
          return { ok: true as const };
        },
      }),
    ],
    status: () => service.status(),
    close: () => service.close(),
  };
}
