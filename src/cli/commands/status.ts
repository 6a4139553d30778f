/** `parsl-sidecar status` and `parsl-sidecar stop`. */
import type { Command } from "commander";
import { pidAlive } from "../../rpc/connection-file.js";
import { sleep } from "../../util/timeout.js";
import { withClient } from "../client.js";
import { fail, printJson } from "../output.js";

interface Opts {
  connection?: string;
  json?: boolean;
}

interface Status {
  pid: number;
  version: string;
  uptime_s: number;
  endpoint: string;
  connection_file: string;
  rpc: Record<string, unknown>;
  memory?: { rss_mb: number; heap_used_mb: number; external_mb: number; fds: number | null };
  services: Record<string, Record<string, unknown>>;
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description("show the running sidecar's pid, version, uptime and what it holds")
    .option(
      "--connection <file>",
      "connection file (default: $PARSL_SIDECAR_CONNECTION_FILE or the runtime directory's)",
    )
    .option("--json", "machine-readable output")
    .action(async (opts: Opts) => {
      try {
        const s = await withClient(opts.connection, (c) =>
          c.call<Status>("sidecar.status", {}, { timeout: 5000 }),
        );
        if (opts.json) return printJson(s);
        process.stdout.write(
          `sidecar pid ${s.pid}, version ${s.version}, up ${s.uptime_s} s\nendpoint ${s.endpoint}\nconnection file ${s.connection_file}\n`,
        );
        if (s.memory)
          process.stdout.write(
            `memory ${s.memory.rss_mb} MB resident (heap ${s.memory.heap_used_mb} MB, buffers ${s.memory.external_mb} MB)${s.memory.fds === null ? "" : `, ${s.memory.fds} open descriptors`}\n`,
          );
        for (const [name, st] of Object.entries(s.services)) {
          process.stdout.write(
            `${name}: ${Object.entries(st)
              .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
              .join(" ")}\n`,
          );
        }
      } catch (err) {
        fail(err, opts);
      }
    });

  program
    .command("stop")
    .description("shut the sidecar down cleanly (closes everything it holds)")
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (opts: Opts) => {
      try {
        const pid = await withClient(opts.connection, async (c) => {
          await c.call("sidecar.shutdown", { reason: "parsl-sidecar stop" }, { timeout: 10_000 });
          return c.info.pid;
        });
        const deadline = Date.now() + 15_000;
        // the client is closed: only this timer keeps the command running while it waits
        while (pidAlive(pid) && Date.now() < deadline) await sleep(50);
        if (opts.json) printJson({ stopped: !pidAlive(pid), pid });
        else process.stdout.write(`stopped sidecar pid ${pid}\n`);
      } catch (err) {
        fail(err, opts);
      }
    });
}
