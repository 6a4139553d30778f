/**
 * `parsl-sidecar ui [--job JOB]`: print a link (with a one-time token) to a running sidecar's local
 * page: the default sidecar, the one named by --connection, or the one serving a job.
 */
import type { Command } from "commander";
import { SidecarClient } from "../../client/client.js";
import { SidecarError } from "../../errors.js";
import { isFinal, JobStore } from "../../jobs/record.js";
import { pidAlive } from "../../rpc/connection-file.js";
import { defaultStateDir } from "../../util/paths.js";
import { withClient } from "../client.js";
import { fail, printJson } from "../output.js";

interface Opts {
  connection?: string;
  job?: string;
  json?: boolean;
}

/** A fresh link to the page of the sidecar behind `connection` (a connection file; default as the client resolves it). */
export async function pageLink(connection: string | undefined): Promise<string> {
  const { url } = await withClient(connection, (c) => c.call<{ url: string }>("web.open", {}));
  return url;
}

/** The connection file of the sidecar serving a running job (`run` records it). */
export function jobConnectionFile(id: string): string {
  const rec = new JobStore(defaultStateDir()).read(id);
  if (isFinal(rec.state))
    throw new SidecarError(
      "JOB_FINISHED",
      `Job \`${id}\` has ended (${rec.state}); its sidecar's page is gone with it`,
    );
  if (!rec.sidecar || !pidAlive(rec.sidecar.pid))
    throw new SidecarError("UNREACHABLE", `The sidecar of job \`${id}\` is not running`);
  return rec.sidecar.connection_file;
}

export function registerUi(program: Command): void {
  program
    .command("ui")
    .description(
      "print a link to a running sidecar's local page (jobs, pools, tunnels, transfers, log)",
    )
    .option("--connection <file>", "connection file")
    .option("--job <id>", "the sidecar serving this running job (e.g. one started by `run`)")
    .option("--json", "machine-readable output")
    .action(async (opts: Opts) => {
      try {
        if (opts.job && opts.connection)
          throw new SidecarError("INVALID_ARGUMENT", "Give --job or --connection, not both");
        const url = await pageLink(opts.job ? jobConnectionFile(opts.job) : opts.connection);
        if (opts.json) printJson({ url });
        else process.stdout.write(`${url}\n`);
      } catch (err) {
        fail(err, opts);
      }
    });
}

/** For `run --ui`: print the live page's link on stderr (stdout belongs to COMMAND). */
export async function printPageLink(connectionFile: string): Promise<void> {
  const client = SidecarClient.connect(connectionFile);
  try {
    const { url } = await client.call<{ url: string }>("web.open", {});
    process.stderr.write(
      `parsl-sidecar: live page (jobs, pools, tunnels, transfers, log): ${url}\n`,
    );
  } finally {
    client.close();
  }
}
