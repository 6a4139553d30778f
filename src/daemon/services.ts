/**
 * The composition root of the services. Adding a capability is one line here: its module
 * factory, given the context and the services it borrows from.
 */
import { LocalOnlyPool } from "../jobs/local-host.js";
import { createJobsModule } from "../jobs/methods.js";
import type { DaemonContext, ServiceModule } from "./module.js";

export async function serviceModules(ctx: DaemonContext): Promise<ServiceModule[]> {
  const modules: ServiceModule[] = [];
  modules.push(createJobsModule(ctx, { hosts: new LocalOnlyPool() }));
  return modules;
}
