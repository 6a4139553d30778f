/** `parsl-sidecar call METHOD [JSON]`: call any RPC method and print its result. */
import type { Command } from "commander";
import { SidecarError } from "../../errors.js";
import { withClient } from "../client.js";
import { fail, printJson } from "../output.js";

interface Opts {
  connection?: string;
  timeout: string;
  json?: boolean;
}

export function registerCall(program: Command): void {
  program
    .command("call")
    .description("call an RPC method with JSON params and print the result as JSON")
    .argument("<method>", "method name, e.g. sidecar.ping (see `call sidecar.describe`)")
    .argument("[params]", "params as a JSON object", "{}")
    .option("--connection <file>", "connection file")
    .option("--timeout <ms>", "milliseconds to wait for the reply", "60000")
    .option("--json", "machine-readable output (the result is JSON either way)")
    .action(async (method: string, paramsText: string, opts: Opts) => {
      try {
        let params: unknown;
        try {
          params = JSON.parse(paramsText);
        } catch (err) {
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Expected params to be a JSON object, got \`${paramsText}\`: ${(err as Error).message}`,
          );
        }
        if (params === null || typeof params !== "object" || Array.isArray(params)) {
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Expected params to be a JSON object, got \`${paramsText}\``,
          );
        }
        const timeout = Number(opts.timeout);
        const result = await withClient(opts.connection, (c) =>
          c.call(method, params as Record<string, unknown>, {
            timeout,
            onProgress: (p) => process.stderr.write(`progress ${JSON.stringify(p)}\n`),
          }),
        );
        printJson(result);
      } catch (err) {
        fail(err, opts);
      }
    });
}
