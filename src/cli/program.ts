/** The parsl-sidecar program: commander set up once, the given commands registered, argv parsed. */
import { Command, CommanderError } from "commander";
import { VERSION } from "../version.js";
import { EXIT } from "../exit-codes.js";

export type Register = (program: Command) => void;

/** Parse `argv` (process.argv's shape) with these commands and run the one it names. */
export async function runProgram(argv: string[], commands: Register[]): Promise<void> {
  const program = new Command();
  program
    .name("parsl-sidecar")
    .description("Run native Parsl workflows from your machine on remote cluster pools over SSH.")
    .version(VERSION)
    .showHelpAfterError("(add --help for usage)")
    .enablePositionalOptions()
    .exitOverride();
  for (const register of commands) register(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    throw err;
  }
}
