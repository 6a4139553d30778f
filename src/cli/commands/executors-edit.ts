/**
 * `parsl-sidecar executors edit FILE`: review and edit an executors file on the local page; exits
 * 0 once accepted (the file written), 4 when cancelled.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { resolveConnectionFile } from "../../client/client.js";
import { Daemon } from "../../daemon/daemon.js";
import { defaultRuntimeDir } from "../../rpc/connection-file.js";
import { ensurePrivateDir } from "../../util/private-dir.js";
import { EXIT, fail, printJson } from "../output.js";
import { reviewExecutors } from "../review.js";

interface Opts {
  connection?: string;
  json?: boolean;
}

/** Adds `edit` to the `executors` command group (creating the group if nobody has yet). */
export function registerExecutorsEdit(program: Command): void {
  const group =
    program.commands.find((c) => c.name() === "executors") ??
    program.command("executors").description("executors.json: check, explain, complete, edit");
  group
    .command("edit")
    .description(
      "open the executors file in the local page: a form per label with explanations and checks; Accept writes it",
    )
    .argument("<file>", "the executors JSON file")
    .option(
      "--connection <file>",
      "use this running sidecar (default: start a private one for the edit)",
    )
    .option("--json", "print the outcome as JSON")
    .action(async (file: string, opts: Opts) => {
      let daemon: Daemon | undefined;
      let privateDir: string | undefined;
      try {
        let connectionFile: string;
        if (opts.connection) connectionFile = resolveConnectionFile(opts.connection);
        else {
          privateDir = ensurePrivateDir(join(defaultRuntimeDir(), `edit-${process.pid}`));
          daemon = await Daemon.start({ runtimeDir: privateDir });
          connectionFile = daemon.connectionFile;
        }
        const onSignal = (): void =>
          void daemon?.close("interrupted").finally(() => process.exit(EXIT.CANCELLED));
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        const outcome = await reviewExecutors(connectionFile, file, {
          print: (l) => process.stdout.write(`${l}\n`),
        });
        await daemon?.close(`review ${outcome}`);
        if (privateDir) rmSync(privateDir, { recursive: true, force: true });
        if (opts.json) printJson({ outcome, file });
        else
          process.stderr.write(
            `parsl-sidecar: ${outcome === "accepted" ? `accepted; ${file} written` : "cancelled; nothing written"}\n`,
          );
        process.exit(outcome === "accepted" ? EXIT.OK : EXIT.CANCELLED);
      } catch (err) {
        await daemon?.close("edit failed").catch(() => undefined);
        if (privateDir) rmSync(privateDir, { recursive: true, force: true });
        fail(err, opts);
      }
    });
}
