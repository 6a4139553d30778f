/**
 * The composition root of the services. Adding a capability is one line here: its module
 * factory, given the context and the services it borrows from.
 */
import { envModule } from "../env/module.js";
import { executorsModule } from "../executors/module.js";
import type { DaemonContext, ServiceModule } from "./module.js";

export async function serviceModules(ctx: DaemonContext): Promise<ServiceModule[]> {
  const modules: ServiceModule[] = [];
  modules.push(executorsModule(ctx));
  modules.push(envModule(ctx));
  return modules;
}
