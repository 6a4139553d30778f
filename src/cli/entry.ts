/**
 * The `parsl-sidecar` executable. Commands listed in FAST load only their own module (start-up
 * matters for them: `env ensure` is a no-op most of the time); everything else, and top-level
 * --help/--version, loads the full program (main.ts). No top-level await: the bundle is
 * CommonJS (scripts/bundle.mjs), so that V8's code cache can be used.
 */
import type { Register } from "./program.js";

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
  const [{ runProgram }, register] = await Promise.all([import("./program.js"), load()]);
  await runProgram(argv, [register]);
}

start(process.argv).catch((err: unknown) => {
  // what an uncaught error did before: its stack on stderr, exit code 1 (EXIT.ERROR)
  console.error(err);
  process.exit(1);
});
