/** The parsl-sidecar command: parse, call the library, print. */
import { Command, CommanderError } from "commander";
import { VERSION } from "../version.js";
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
import { EXIT } from "./exit-codes.js";

/** Parse `argv` (process.argv's shape) and run the command it names. */
export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name("parsl-sidecar")
    .description("Run native Parsl workflows from your machine on remote cluster pools over SSH.")
    .version(VERSION)
    .showHelpAfterError("(add --help for usage)")
    .enablePositionalOptions()
    .exitOverride();

  registerServe(program);
  registerStatus(program);
  registerCall(program);
  registerRun(program);
  registerEnv(program);
  registerExecutors(program);
  registerSsh(program);
  registerTunnels(program);
  registerUi(program);
  registerExecutorsEdit(program);
  registerJobs(program);
  registerStage(program);

  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    }
    throw err;
  }
}
