/** The executors service as a daemon module: its RPC methods, status and close path. */
import type { DaemonContext, ServiceModule } from "../daemon/module.js";
import type { HostPool } from "../ssh/host.js";
import { poolMethods } from "./methods-pool.js";
import { staticMethods } from "./methods-static.js";
import { ExecutorsService } from "./service.js";
import type { WorkerTunnels } from "./tunnel-port.js";

export interface ExecutorsModuleDeps {
  /** the SSH pool (HostPool); without it only schema/check/explain work */
  hosts?: HostPool | undefined;
  /** reverse tunnels with relay, adapted from the tunnels service */
  tunnels?: WorkerTunnels | undefined;
}

export function executorsModule(ctx: DaemonContext, deps: ExecutorsModuleDeps = {}): ServiceModule & { service: ExecutorsService } {
  const service = new ExecutorsService({ hosts: deps.hosts, tunnels: deps.tunnels, log: ctx.log, events: ctx.events });
  return {
    name: "executors",
    service,
    // without the SSH layer only the file methods exist (callers test for the others)
    methods: [...staticMethods(), ...(deps.hosts ? poolMethods(service) : [])],
    status: () => service.status(),
    close: () => service.close(),
  };
}
