/** The parsl-sidecar command: parse, call the library, print. */
import { registerCall } from "./commands/call.js";
import { registerEnv } from "./commands/env.js";
import { registerExecutors } from "./commands/executors.js";
import { registerExecutorsEdit } from "./commands/executors-edit.js";
import { registerJobs } from "./commands/jobs.js";
import { registerRun } from "./commands/run.js";
import { registerServe } from "./commands/serve.js";
import { registerSsh } from "./commands/ssh.js";
import { registerStage } from "./commands/stage.js";
import { registerStatus } from "./commands/status.js";
import { registerTunnels } from "./commands/tunnels.js";
import { registerUi } from "./commands/ui.js";
import { runProgram } from "./program.js";

/** Parse `argv` (process.argv's shape) and run the command it names. */
export async function main(argv: string[]): Promise<void> {
  await runProgram(argv, [
    registerServe,
    registerStatus,
    registerCall,
    registerRun,
    registerEnv,
    registerExecutors,
    registerSsh,
    registerTunnels,
    registerUi,
    registerExecutorsEdit,
    registerJobs,
    registerStage,
  ]);
}
