/**
 * The composition root of the services. Adding a capability is one line here: its module
 * factory, given the context and the services it borrows from.
 */
import type { DaemonContext, ServiceModule } from "./module.js";

export async function serviceModules(_ctx: DaemonContext): Promise<ServiceModule[]> {
  const modules: ServiceModule[] = [];
  return modules;
}
