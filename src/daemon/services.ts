/**
 * The composition root of the services. Adding a capability is one line here: its module
 * factory, given the context and the services it borrows from.
 */
import { envModule } from "../env/module.js";
import { executorsModule } from "../executors/module.js";
import { createJobsModule } from "../jobs/methods.js";
import { JOB_ENV } from "../jobs/proc.js";
import { sshModule } from "../ssh/module.js";
import { stagingModule } from "../staging/module.js";
import { tunnelsModule } from "../tunnels/module.js";
import { webModule } from "../web/module.js";
import type { DaemonContext, ServiceModule } from "./module.js";

export async function serviceModules(ctx: DaemonContext): Promise<ServiceModule[]> {
  const modules: ServiceModule[] = [];
  // first in, last closed: everything below borrows SSH connections from ssh.pool
  const ssh = sshModule(ctx);
  modules.push(ssh);
  // a job's relays on a pool carry its marker, and start only once the job's watchdog runs there:
  // it ends them with its workers, also when this sidecar dies right after opening the tunnel
  let jobs: ReturnType<typeof createJobsModule> | undefined;
  const relayEnv = async (owner: string, target: string): Promise<Record<string, string>> => {
    if (!jobs?.service.store.exists(owner)) return {};
    await jobs.service.watchPool(owner, target);
    return { [JOB_ENV]: owner };
  };
  const tunnels = tunnelsModule(ctx, ssh.pool, { relayEnv });
  modules.push(tunnels);
  const executors = executorsModule(ctx, { hosts: ssh.pool, tunnels: tunnels.manager });
  modules.push(executors);
  // jobs close before what they hold: a job's teardown releases its blocks and tunnels (owner = job id)
  jobs = createJobsModule(ctx, { hosts: ssh.pool, executors: executors.service, blockOwner: (id) => executors.service.blocks?.list().find((b) => b.id === id)?.owner, owners: [{ name: "executors", stage: "remote", release: (o) => executors.service.release(o) }, { name: "tunnels", stage: "tunnels", release: (o) => tunnels.manager.closeOwner(o) }] });
  modules.push(jobs);
  modules.push(stagingModule(ctx, { hosts: ssh.pool }));
  modules.push(webModule(ctx));
  modules.push(envModule(ctx, { pool: ssh.pool, jobs: jobs.service }));
  return modules;
}
