/** The executors service as a daemon module: its RPC methods, status and close path. */
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import type { Hosts } from "../ssh/host.js";
import type { BlockEnv } from "../blocks/index.js";
import { poolMethods } from "./methods-pool.js";
import { staticMethods } from "./methods-static.js";
import { ExecutorsService } from "./service.js";
import { workerTunnels, type TunnelManagerLike, type WorkerTunnels } from "./tunnel-port.js";

export interface ExecutorsModuleDeps {
  /** the SSH connections (Hosts, SshConnections in the daemon); without it only schema/check/explain work */
  hosts?: Hosts | undefined;
  /** the tunnels service's manager (reverse tunnels with a head-node relay) */
  tunnels?: TunnelManagerLike | undefined;
  /** or an adapted one (tests) */
  workerTunnels?: WorkerTunnels | undefined;
  /** environment for the blocks an owner starts on a pool (see BlockEnv) */
  blockEnv?: BlockEnv | undefined;
}

export function executorsModule(
  ctx: DaemonContext,
  deps: ExecutorsModuleDeps = {},
): ServiceModule & { service: ExecutorsService } {
  const tunnels = deps.workerTunnels ?? (deps.tunnels ? workerTunnels(deps.tunnels) : undefined);
  const service = new ExecutorsService({
    hosts: deps.hosts,
    tunnels,
    log: ctx.log,
    events: ctx.events,
    blockEnv: deps.blockEnv,
  });
  return {
    name: "executors",
    service,
    // without the SSH layer only the file methods exist (callers test for the others)
    methods: [...staticMethods(), ...(deps.hosts ? poolMethods(service) : [])],
    status: () => service.status(),
    close: () => service.close(),
  };
}
