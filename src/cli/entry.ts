/**
 * The `parsl-sidecar` executable. Commands listed in FAST load only their own module (start-up
 * matters for them: `env ensure` is a no-op most of the time); everything else, and top-level
 * --help/--version, loads the full program (main.ts). No top-level await: the bundle is
 * CommonJS (scripts/bundle.mjs), so that V8's code cache can be used.
 */
import type { Command } from "commander";

type Register = (program: Command) => void;

/** Top-level command name -> its module and registration function. */
const FAST: Record<string, () => Promise<Register>> = {
  env: async () => (await import("./commands/env.js")).registerEnv,
};

async function start(argv: string[]): Promise<void> {
  const name = argv[2];
  const load = name === undefined ? undefined : FAST[name];
  if (load === undefined) {
    await (await import("./main.js")).main(argv);
    return;
  }
  const [{ Command: CommandClass, CommanderError }, { VERSION }, { EXIT }, register] = await Promise.all([import("commander"), import("../version.js"), import("./exit-codes.js"), load()]);
  const program = new CommandClass();
  program
    .name("parsl-sidecar")
    .description("Run native Parsl workflows from your machine on remote cluster pools over SSH.")
    .version(VERSION)
    .showHelpAfterError("(add --help for usage)")
    .enablePositionalOptions()
    .exitOverride();
  register(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.USAGE);
    throw err;
  }
}

start(process.argv).catch((err: unknown) => {
  // what an uncaught error did before: its stack on stderr, exit code 1 (EXIT.ERROR)
  console.error(err);
  process.exit(1);
});
