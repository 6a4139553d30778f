/** The jobs.* RPC methods and the jobs service module the daemon wires in. */
import { z } from "zod";
import { BLOCK_MARK } from "../blocks/index.js";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import { defineMethod } from "../rpc/registry.js";
import type { Hosts } from "../ssh/host.js";
import { JobRecordSchema } from "./record.js";
import type { ExecutorsService } from "../executors/service.js";
import { executorsPreparer } from "./executors-preparer.js";
import { type JobResource, JobResourceSchema, type OwnerRelease } from "./resources.js";
import { DEFAULT_GRACE_MS, JobsService } from "./service.js";

const JobViewSchema = JobRecordSchema.extend({ live: z.boolean() });
const JobParam = z.string().min(1).max(100);

export interface JobsModule extends ServiceModule {
  service: JobsService;
}

export interface JobsModuleDeps {
  /** reaches the pools (watchdogs, remote cleanup): SshConnections, which also serves `local` */
  hosts: Hosts;
  /** services holding things under the job id, released at teardown (executors, tunnels) */
  owners?: OwnerRelease[];
  /** completes `run --executors FILE` before COMMAND starts */
  executors?: Pick<ExecutorsService, "complete">;
  /** who owns a worker block (executors.block events), so its process group joins the job */
  blockOwner?: (blockId: string) => string | undefined;
  watchdogBoundS?: number;
}

/** The jobs service module. */
export function createJobsModule(ctx: DaemonContext, deps: JobsModuleDeps): JobsModule {
  const service = new JobsService({
    stateDir: ctx.stateDir,
    log: ctx.log,
    events: ctx.events,
    hosts: deps.hosts,
    owners: deps.owners ?? [],
    ...(deps.watchdogBoundS ? { watchdogBoundS: deps.watchdogBoundS } : {}),
  });
  if (deps.executors) service.addPreparer(executorsPreparer(deps.executors, ctx.runtimeDir));
  const stopBlocks = deps.blockOwner
    ? followBlocks(ctx, service, deps.blockOwner)
    : () => undefined;
  const stopTunnels = followTunnels(ctx, service);
  return {
    name: "jobs",
    service,
    status: () => service.status(),
    close: async () => {
      stopBlocks();
      stopTunnels();
      await service.close();
    },
    methods: [
      defineMethod({
        name: "jobs.list",
        description:
          "Every job of this user (from the records on disk), newest first; a running job whose sidecar died is marked `lost` and cleaned up.",
        params: z.object({ running: z.boolean().default(false) }).strict(),
        result: z.object({ jobs: z.array(JobViewSchema) }),
        handler: async (p) => {
          const jobs = await service.list();
          return { jobs: p.running ? jobs.filter((j) => j.live) : jobs };
        },
      }),
      defineMethod({
        name: "jobs.get",
        description:
          "One job's record: state, command, start, pools, tunnels, remote blocks, how it ended.",
        params: z.object({ job: JobParam }).strict(),
        result: JobViewSchema,
        handler: (p) => service.get(p.job),
      }),
      defineMethod({
        name: "jobs.kill",
        description:
          "Stop a job: SIGTERM to all its local processes, SIGKILL after `grace_ms`, its pools' worker groups killed and scheduler jobs cancelled (one scancel/qdel per pool), its tunnels closed. Replies when everything is down.",
        params: z
          .object({
            job: JobParam,
            grace_ms: z.number().int().min(0).max(3_600_000).default(DEFAULT_GRACE_MS),
          })
          .strict(),
        result: z.object({
          job: z.string(),
          state: z.string(),
          exit_code: z.number().nullable(),
          reason: z.string().nullable(),
          cleanup: z.unknown(),
        }),
        handler: async (p) => {
          const { record } = await service.kill(p.job, p.grace_ms);
          return {
            job: record.id,
            state: record.state,
            exit_code: record.exit_code,
            reason: record.reason,
            cleanup: record.cleanup,
          };
        },
      }),
      defineMethod({
        name: "jobs.register_resource",
        description:
          "Record something started for a job (a remote process group, a scheduler job, a tunnel, a local process group) so that kill and the end of run clean it up; remote ones are also handed to the pool's watchdog.",
        params: z.object({ job: JobParam, resource: JobResourceSchema }).strict(),
        result: z.object({ ok: z.literal(true), resources: z.number() }),
        handler: async (p) => {
          await service.add(p.job, p.resource);
          return { ok: true as const, resources: service.resources(p.job).length };
        },
      }),
      defineMethod({
        name: "jobs.unregister_resource",
        description:
          "Forget a resource its owner already cleaned up (e.g. a block the provider cancelled).",
        params: z.object({ job: JobParam, resource: JobResourceSchema }).strict(),
        result: z.object({ ok: z.literal(true), resources: z.number() }),
        handler: async (p) => {
          await service.remove(p.job, p.resource);
          return { ok: true as const, resources: service.resources(p.job).length };
        },
      }),
    ],
  };
}

/** Worker blocks the executors service starts for a job become the job's remote groups (watched by the pool's watchdog). */
function followBlocks(
  ctx: DaemonContext,
  service: JobsService,
  ownerOf: (blockId: string) => string | undefined,
): () => void {
  const held = new Map<string, { job: string; resource: JobResource }>();
  return ctx.events.on(["executors.block"], (e) => {
    const d = e.data as { id?: string; target?: string; state?: string; pgid?: number | null };
    if (!d.id) return;
    if (d.state === "running" && d.target && d.pgid) {
      const job = ownerOf(d.id);
      if (!job || !service.store.exists(job)) return;
      const resource: JobResource = {
        kind: "remote_group",
        target: d.target,
        pgid: d.pgid,
        mark: `${BLOCK_MARK}=${d.id}`,
        label: `block ${d.id}`,
      };
      held.set(d.id, { job, resource });
      service
        .add(job, resource)
        .catch((err: unknown) =>
          ctx.log.warn(
            { job, block: d.id, err: (err as Error).message },
            "could not add a worker block to its job",
          ),
        );
    } else if (d.state !== "running") {
      const h = held.get(d.id);
      held.delete(d.id);
      if (h) service.remove(h.job, h.resource).catch(() => undefined);
    }
  });
}

/** Tunnels opened with a job id as owner show in the job (`jobs` lists them; teardown closes them by owner). */
function followTunnels(ctx: DaemonContext, service: JobsService): () => void {
  return ctx.events.on(["tunnel.state"], (e) => {
    const d = e.data as {
      id?: string;
      owner?: string;
      state?: string;
      kind?: string;
      target?: string;
      local_port?: number;
      remote_port?: number;
      reach?: string;
    };
    if (!d.id || !d.owner || !service.store.exists(d.owner)) return;
    const resource: JobResource = {
      kind: "tunnel",
      id: d.id,
      ...(d.target ? { target: d.target } : {}),
      description: `${d.kind ?? "tunnel"} ${d.local_port ?? "?"} -> ${d.remote_port ?? "?"}`,
      ...(d.reach === "relay" && d.target ? { relay: true } : {}),
    };
    // kept after the tunnel closed: the record says which tunnels the job had
    if (
      d.state === "open" &&
      !service.resources(d.owner).some((r) => r.kind === "tunnel" && r.id === d.id)
    )
      service.add(d.owner, resource).catch(() => undefined);
  });
}
