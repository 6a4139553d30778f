/** RPC methods that reach pools: executors.complete, .preflight, .release and .blocks.*. */
import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { defineMethod, type MethodDef } from "../rpc/registry.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { assertExecutors } from "./check.js";
import { detectIndent } from "./complete.js";
import { loadSource, sourceParams } from "./methods-static.js";
import { preflightError } from "./preflight.js";
import { resolveExecutor } from "./resolve.js";
import type { ExecutorsService } from "./service.js";
import { SidecarError } from "../errors.js";

const owner = z
  .string()
  .min(1)
  .max(200)
  .describe(
    "who holds the tunnels and blocks: a job id, or a workflow process; released with `executors.release`",
  );
const labels = z
  .array(z.string())
  .min(1)
  .optional()
  .describe("only these executors (default: all)");
const blockInfo = z.object({
  id: z.string(),
  target: z.string(),
  owner: z.string(),
  label: z.string(),
  state: z.enum(["running", "completed", "failed", "cancelled"]),
  pgid: z.number().nullable(),
  exit_code: z.number().nullable(),
  signal: z.string().nullable(),
  started_at: z.number(),
  ended_at: z.number().nullable(),
  tail: z.string(),
});

function pickLabels(all: string[], wanted: string[] | undefined, file: string): string[] {
  if (!wanted) return all;
  for (const l of wanted)
    if (!all.includes(l))
      throw new SidecarError(
        "EXECUTORS_INVALID",
        `No executor \`${l}\` in ${file}; it has ${all.join(", ")}`,
        { data: { label: l } },
      );
  return wanted;
}

export function poolMethods(svc: ExecutorsService): MethodDef[] {
  return [
    defineMethod({
      name: "executors.complete",
      description:
        "Fill HOST_IP, HOST_USER, INTERCHANGE_PORT (free here), WORKER_PORT and DIAL_ADDRESS (pool side) and TUNNEL_ID, opening each pool's worker tunnel (and relay for slurm/pbspro) for `owner`. Writes `out` atomically when given; the input is left alone unless out is the input. All or nothing.",
      params: z
        .object({
          ...sourceParams,
          out: z.string().min(1).optional(),
          labels,
          owner: owner.default("sidecar"),
          owner_pid: z.number().int().positive().optional(),
          reuse: z.boolean().default(true),
        })
        .strict(),
      result: z.object({
        executors: z.record(z.string(), z.unknown()),
        written: z.string().nullable(),
        tunnels: z.array(
          z.object({
            label: z.string(),
            tunnel_id: z.string().nullable(),
            interchange_port: z.number(),
            dial_address: z.string(),
            worker_port: z.number(),
            reused: z.boolean(),
          }),
        ),
        warnings: z.array(z.string()),
        resolved: z.record(z.string(), z.record(z.string(), z.unknown())),
      }),
      handler: async (p, call) => {
        const { json, file } = loadSource(p);
        const res = await svc.complete(
          {
            json,
            file,
            labels: p.labels,
            reuse: p.reuse,
            signal: call.signal,
            progress: (label, message) => call.progress({ label, message }),
          },
          p.owner,
          p.owner_pid,
        );
        let written: string | null = null;
        if (p.out !== undefined) {
          let indent: number | string = 4;
          let mode: number | undefined;
          if (p.path !== undefined) {
            try {
              indent = detectIndent(readFileSync(p.path, "utf8"));
              mode = statSync(p.path).mode & 0o7777;
            } catch {
              // the input was read a moment ago; keep the defaults
            }
          }
          try {
            mode = statSync(p.out).mode & 0o7777;
          } catch {
            // a new file takes the input's mode
          }
          writeFileAtomic(
            p.out,
            `${JSON.stringify(res.executors, null, indent)}\n`,
            mode === undefined ? {} : { mode },
          );
          written = p.out;
        }
        const checked = assertExecutors(res.executors, file);
        const resolved = Object.fromEntries(
          Object.entries(checked.executors).map(([l, e]) => [
            l,
            resolveExecutor(l, e) as unknown as Record<string, unknown>,
          ]),
        );
        return {
          executors: res.executors,
          written,
          tunnels: res.tunnels,
          warnings: res.warnings,
          resolved,
        };
      },
    }),
    defineMethod({
      name: "executors.preflight",
      description:
        "Before workers start: each pool is reachable, its Python minor and Parsl versions equal `local`'s, RUN_DIR/WORKER_LOGDIR_ROOT are writable, the worker tunnel accepts connections. With raise (default) a failure is an error naming the executor (VERSION_SKEW, POOL_UNREACHABLE, TUNNEL_*, PROVIDER_FAILED).",
      params: z
        .object({
          ...sourceParams,
          labels,
          local: z
            .object({ python: z.string(), parsl: z.string() })
            .describe("this machine's workflow Python and Parsl versions"),
          raise: z.boolean().default(true),
        })
        .strict(),
      result: z.object({ ok: z.boolean(), executors: z.array(z.record(z.string(), z.unknown())) }),
      handler: async (p) => {
        const { json, file } = loadSource(p);
        const checked = assertExecutors(json, file);
        const chosen = pickLabels(Object.keys(checked.executors), p.labels, file);
        const results = await svc.preflight(
          chosen.map((l) => resolveExecutor(l, checked.executors[l]!)),
          p.local,
        );
        if (p.raise) {
          const err = preflightError(results);
          if (err) throw err;
        }
        return {
          ok: results.every((r) => r.ok),
          executors: results as unknown as Array<Record<string, unknown>>,
        };
      },
    }),
    defineMethod({
      name: "executors.release",
      description:
        "Close the worker tunnels opened for `owner` and cancel its running worker blocks.",
      params: z.object({ owner }).strict(),
      result: z.object({ tunnels: z.number(), blocks: z.number() }),
      handler: (p) => svc.release(p.owner),
    }),
    defineMethod({
      name: "executors.blocks.start",
      description:
        "Start a worker block on a pool's head node: `script` (bash) in its own process group, in `cwd` (created), output appended to stdout_path/stderr_path here.",
      params: z
        .object({
          target: z.string().min(1),
          script: z.string().min(1),
          owner,
          owner_pid: z.number().int().positive().optional(),
          label: z.string().default(""),
          cwd: z.string().optional(),
          stdout_path: z.string().optional(),
          stderr_path: z.string().optional(),
        })
        .strict(),
      result: blockInfo,
      handler: async (p) => await svc.startBlock(p, p.owner_pid),
    }),
    defineMethod({
      name: "executors.blocks.status",
      description:
        "State of worker blocks (running, completed, failed, cancelled), exit code and the tail of their output.",
      params: z.object({ ids: z.array(z.string()) }).strict(),
      result: z.object({ blocks: z.array(blockInfo) }),
      handler: (p) => ({ blocks: svc.blockManager().status(p.ids) }),
    }),
    defineMethod({
      name: "executors.blocks.cancel",
      description:
        "SIGTERM the blocks' process groups on the pool, SIGKILL after grace_ms; returns when they are gone.",
      params: z
        .object({
          ids: z.array(z.string()),
          grace_ms: z.number().int().min(0).max(600_000).default(5000),
        })
        .strict(),
      result: z.object({ cancelled: z.array(z.boolean()) }),
      handler: async (p) => ({ cancelled: await svc.blockManager().cancel(p.ids, p.grace_ms) }),
    }),
    defineMethod({
      name: "executors.blocks.list",
      description: "Worker blocks this sidecar started (optionally of one owner).",
      params: z.object({ owner: z.string().optional() }).strict(),
      result: z.object({ blocks: z.array(blockInfo) }),
      handler: (p) => ({ blocks: svc.blockManager().list(p.owner) }),
    }),
  ];
}
