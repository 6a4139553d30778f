/** The tunnels service: tunnels.open / list / check / close over RPC, closeOwner for other modules. */
import { z } from "zod";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import { defineMethod } from "../rpc/registry.js";
import type { Hosts } from "../ssh/host.js";
import { TunnelManager } from "./manager.js";
import type { TunnelDeps } from "./base.js";

const port = z.number().int().min(1).max(65535);

const recordSchema = z.object({
  id: z.string(),
  kind: z.enum(["reverse", "local"]),
  target: z.string(),
  owner: z.string(),
  label: z.string().nullable(),
  state: z.enum(["opening", "open", "reconnecting", "failed", "closed"]),
  bind: z.enum(["loopback", "cluster", "auto"]),
  reach: z.enum(["gateway", "relay", "loopback", "local"]),
  local_host: z.string(),
  local_port: z.number(),
  remote_host: z.string(),
  remote_port: z.number(),
  dial_host: z.string(),
  dial_port: z.number(),
  dial_hosts: z.array(z.string()),
  relay: z
    .object({ interpreter: z.string(), pgid: z.number().nullable(), listen: z.string() })
    .nullable(),
  bytes_in: z.number(),
  bytes_out: z.number(),
  connections: z.number(),
  total_connections: z.number(),
  cut_connections: z.number(),
  cut_in_flight: z.number(),
  direct: z.boolean(),
  durable: z.boolean(),
  resumed_connections: z.number(),
  reconnects: z.number(),
  port_changes: z.array(
    z.object({
      at: z.number(),
      which: z.enum(["remote_port", "dial_port"]),
      from: z.number(),
      to: z.number(),
      reason: z.string(),
    }),
  ),
  last_check: z
    .object({
      ok: z.boolean(),
      at: z.number(),
      ms: z.number().optional(),
      error: z.string().optional(),
    })
    .nullable(),
  error: z.string().nullable(),
  created_at: z.number(),
});

export interface TunnelsModule extends ServiceModule {
  /** open/list/close/closeOwner for other modules (jobs release owners; executors open worker tunnels) */
  manager: TunnelManager;
}

/** Create the tunnels module; it borrows connections from `hosts`. */
export function tunnelsModule(
  ctx: DaemonContext,
  hosts: Hosts,
  opts: Pick<TunnelDeps, "relayEnv"> = {},
): TunnelsModule {
  const manager = new TunnelManager({
    hosts,
    events: ctx.events,
    log: ctx.log,
    ...(opts.relayEnv ? { relayEnv: opts.relayEnv } : {}),
  });
  return {
    name: "tunnels",
    manager,
    methods: [
      defineMethod({
        name: "tunnels.open",
        description:
          "Open a reverse tunnel (workers on the pool dial dial_host:dial_port and reach local_port here; compute nodes through GatewayPorts or a relay on the head node) or a local forward (local_port here reaches remote_host:remote_port from the pool). Checked end to end before it returns. `durable` (reverse): connections go through a relay on the pool that keeps them open across dropped SSH connections and resumes them without losing a byte (needs python3 there).",
        params: z
          .object({
            target: z.string().min(1),
            kind: z.enum(["reverse", "local"]),
            local_port: port.optional(),
            local_host: z.string().min(1).optional(),
            remote_port: port.optional(),
            remote_host: z.string().min(1).optional(),
            bind: z.enum(["loopback", "cluster", "auto"]).optional(),
            durable: z.boolean().optional(),
            owner: z.string().min(1).optional(),
            label: z.string().min(1).max(200).optional(),
          })
          .strict(),
        result: recordSchema,
        handler: async (p, call) => {
          const { owner, ...rest } = p;
          return await manager.open({ ...rest, owner: owner ?? `client:${call.client}` });
        },
      }),
      defineMethod({
        name: "tunnels.list",
        description:
          "Every tunnel: state, both ports, where workers dial, bytes each way, open connections, reconnects, owner, relay.",
        params: z.object({}).strict(),
        result: z.array(recordSchema),
        handler: () => manager.list(),
      }),
      defineMethod({
        name: "tunnels.check",
        description:
          "Run the end-to-end check of a tunnel now (a probe from the pool through dial_host:dial_port, answered by the sidecar, so the service is not touched; on a direct forward the service sees an empty connection and the SSH master's log says how it fared).",
        params: z.object({ id: z.string().min(1) }).strict(),
        result: z.object({
          ok: z.boolean(),
          at: z.number(),
          ms: z.number().optional(),
          error: z.string().optional(),
        }),
        handler: async (p) => await manager.check(p.id),
      }),
      defineMethod({
        name: "tunnels.close",
        description:
          "Close a tunnel: the listener on the pool (and the relay) and here are gone when this returns.",
        params: z.object({ id: z.string().min(1) }).strict(),
        result: recordSchema,
        handler: async (p) => await manager.close(p.id, "tunnels.close"),
      }),
    ],
    status: () => {
      const list = manager.list();
      return {
        tunnels: list.length,
        open: list.filter((t) => t.state === "open").length,
        reconnecting: list.filter((t) => t.state === "reconnecting").length,
      };
    },
    close: async () => await manager.closeAll(),
  };
}
