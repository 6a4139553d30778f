/** `parsl-sidecar ui`: print a link (with a one-time token) to the running sidecar's local page. */
import type { Command } from "commander";
import { withClient } from "../client.js";
import { fail, printJson } from "../output.js";

interface Opts {
  connection?: string;
  json?: boolean;
}

export function registerUi(program: Command): void {
  program
    .command("ui")
    .description("print a link to the running sidecar's local page (jobs, tunnels, transfers, log)")
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (opts: Opts) => {
      try {
        const { url } = await withClient(opts.connection, (c) => c.call<{ url: string }>("web.open", {}));
        if (opts.json) printJson({ url });
        else process.stdout.write(`${url}\n`);
      } catch (err) {
        fail(err, opts);
      }
    });
}
