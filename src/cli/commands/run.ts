/**
 * `parsl-sidecar run -- COMMAND...`: start a sidecar (or use --connection), run COMMAND with
 * PARSL_SIDECAR_CONNECTION_FILE set, forward signals, tear down, return COMMAND's exit code.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import { Daemon } from "../../daemon/daemon.js";
import { supervise } from "../../jobs/supervise.js";
import { CONNECTION_ENV, defaultRuntimeDir, ensurePrivateDir } from "../../rpc/connection-file.js";
import type { LogLevel } from "../../util/logger.js";
import { resolveConnectionFile } from "../../client/client.js";
import { fail } from "../output.js";
import { reviewOrCancel } from "../review.js";

interface RunOptions {
  connection?: string;
  logLevel: LogLevel;
  json?: boolean;
  review?: boolean;
  executors?: string;
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("start a sidecar, run COMMAND with it, and tear everything down when COMMAND ends")
    .argument("<command...>", "the workflow command, after --, e.g. -- python main.py")
    .option("--connection <file>", "use this running sidecar instead of starting one")
    .option("--log-level <level>", "sidecar log level on stderr", "warn")
    .option("--json", "print a JSON summary on stdout when COMMAND ends")
    .option("--executors <file>", "the executors file", "executors.json")
    .option("--review", "before COMMAND starts, review the executors file on the local page (Cancel exits 4)")
    .passThroughOptions()
    .action(async (command: string[], opts: RunOptions) => {
      let daemon: Daemon | undefined;
      let privateDir: string | undefined;
      try {
        let connectionFile: string;
        if (opts.connection) {
          connectionFile = resolveConnectionFile(opts.connection);
        } else {
          privateDir = ensurePrivateDir(join(defaultRuntimeDir(), `run-${process.pid}`));
          daemon = await Daemon.start({ runtimeDir: privateDir, stderrLevel: opts.logLevel });
          connectionFile = daemon.connectionFile;
        }
        if (opts.review) await reviewOrCancel(connectionFile, opts.executors ?? "executors.json");
        const res = await supervise(command, { env: { ...process.env, [CONNECTION_ENV]: connectionFile } });
        if (res.error) process.stderr.write(`parsl-sidecar: ${res.error}\n`);
        await daemon?.close(`command ended with ${res.exitCode}`);
        if (privateDir) rmSync(privateDir, { recursive: true, force: true });
        if (opts.json) process.stdout.write(`${JSON.stringify({ exit_code: res.exitCode, signal: res.signal ?? null, duration_ms: res.durationMs })}\n`);
        process.exit(res.exitCode);
      } catch (err) {
        await daemon?.close("run failed").catch(() => undefined);
        if (privateDir) rmSync(privateDir, { recursive: true, force: true });
        fail(err, opts);
      }
    });
}
