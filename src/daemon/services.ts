/**
 * The composition root of the services. Adding a capability is one line here: its module
 * factory, given the context and the services it borrows from.
 */
import { executorsModule } from "../executors/module.js";
import { sshModule } from "../ssh/module.js";
import { stagingModule } from "../staging/module.js";
import { webModule } from "../web/module.js";
import type { DaemonContext, ServiceModule } from "./module.js";

export async function serviceModules(ctx: DaemonContext): Promise<ServiceModule[]> {
  const modules: ServiceModule[] = [];
  // first in, last closed: everything below borrows SSH connections from ssh.pool
  const ssh = sshModule(ctx);
  modules.push(ssh);
  modules.push(executorsModule(ctx));
  modules.push(stagingModule(ctx, { hosts: ssh.pool }));
  modules.push(webModule(ctx));
  return modules;
}
