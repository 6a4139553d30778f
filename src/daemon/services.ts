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
import type { DaemonContext, ServiceModule } from "../rpc/service.js";

export async function serviceModules(ctx: DaemonContext): Promise<ServiceModule[]> {
  const modules: ServiceModule[] = [];
  // first in, last closed: everything below borrows SSH connections from ssh.connections
  const ssh = sshModule(ctx);
  modules.push(ssh);
  // what a job starts on a pool (relays, worker blocks) carries its marker, and starts only once
  // the job's watchdog runs there: it ends them with the job, also when this sidecar dies the
  // moment they started
  let jobs: ReturnType<typeof createJobsModule> | undefined;
  const jobEnv = async (owner: string, target: string): Promise<Record<string, string>> => {
    if (!jobs?.service.store.exists(owner)) return {};
    await jobs.service.watchPool(owner, target);
    return { [JOB_ENV]: owner };
  };
  const tunnels = tunnelsModule(ctx, ssh.connections, { relayEnv: jobEnv });
  modules.push(tunnels);
  const executors = executorsModule(ctx, {
    hosts: ssh.connections,
    tunnels: tunnels.manager,
    blockEnv: jobEnv,
  });
  modules.push(executors);
  // jobs close before what they hold: a job's teardown releases its blocks and tunnels (owner = job id)
  jobs = createJobsModule(ctx, {
    hosts: ssh.connections,
    executors: executors.service,
    blockOwner: (id) => executors.service.blocks?.list().find((b) => b.id === id)?.owner,
    owners: [
      { name: "executors", stage: "remote", release: (o) => executors.service.release(o) },
      { name: "tunnels", stage: "tunnels", release: (o) => tunnels.manager.closeOwner(o) },
    ],
  });
  modules.push(jobs);
  modules.push(stagingModule(ctx, { hosts: ssh.connections }));
  modules.push(webModule(ctx, { prompts: ssh.connections.prompts }));
  modules.push(envModule(ctx, { hosts: ssh.connections, jobs: jobs.service }));
  return modules;
}
