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

/**
 * A reader that went away (`parsl-sidecar call ... | head`) is not an error: what is still to be
 * printed is dropped and the command carries on to its own end (`run` still tears everything
 * down and exits with COMMAND's code). Node would otherwise throw EPIPE from the stream.
 */
function dropOutputToClosedReader(stream: NodeJS.WriteStream): void {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE" && err.code !== "ERR_STREAM_DESTROYED") throw err;
  });
}
dropOutputToClosedReader(process.stdout);
dropOutputToClosedReader(process.stderr);

start(process.argv).catch((err: unknown) => {
  // what an uncaught error did before: its stack on stderr, exit code 1 (EXIT.ERROR)
  console.error(err);
  process.exit(1);
});
