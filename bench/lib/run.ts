/** How a bench ends: its result as the last line of stdout, or the test bed stopped and exit 1. */
import { stopAll } from "../../test/testbed/registry.js";

export function runBench(main: () => Promise<unknown>, log: (s: string) => void): void {
  main().then(
    (res) => {
      process.stdout.write(`${JSON.stringify(res)}\n`);
      process.exit(0);
    },
    async (err: unknown) => {
      log(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      await stopAll();
      process.exit(1);
    },
  );
}
