/** `parsl-sidecar jobs` (list this user's jobs) and `parsl-sidecar kill JOB` (stop one, here and on its pools). */
import type { Command } from "commander";
import { SidecarClient } from "../../client/client.js";
import { isSidecarError } from "../../errors.js";
import { answerPromptsInProcess } from "../prompts.js";
import { openHosts } from "../../jobs/hosts.js";
import { killFromRecord, reconcile, supervisorAlive } from "../../jobs/lifecycle.js";
import { isFinal, type JobRecord, JobStore } from "../../jobs/record.js";
import { DEFAULT_GRACE_MS, finishedError } from "../../jobs/service.js";
import { pidAlive, readConnectionFile } from "../../rpc/connection-file.js";
import { formatDuration, parseDuration } from "../../util/duration.js";
import { defaultStateDir } from "../../util/paths.js";
import { fail, printJson, printTable } from "../output.js";

interface ListOpts {
  json?: boolean;
  running?: boolean;
}

interface KillOpts {
  grace: string;
  json?: boolean;
}

function summary(r: JobRecord): Record<string, unknown> {
  const blocks = r.resources.filter(
    (x) => x.kind === "remote_group" || x.kind === "scheduler_job",
  ).length;
  const tunnels = r.resources.filter((x) => x.kind === "tunnel").length;
  return {
    job: r.id,
    state: r.state,
    started: r.started_at?.replace("T", " ").slice(0, 19),
    exit: r.exit_code,
    command: r.command.join(" ").slice(0, 50),
    pools: r.pools.join(",") || "-",
    tunnels,
    blocks,
  };
}

/** Ask the job's sidecar to stop it; false when that sidecar cannot be reached. */
async function killThroughSidecar(rec: JobRecord, graceMs: number): Promise<boolean> {
  if (!rec.sidecar || !pidAlive(rec.sidecar.pid)) return false;
  let client: SidecarClient;
  try {
    const info = readConnectionFile(rec.sidecar.connection_file);
    if (info.pid !== rec.sidecar.pid) return false;
    client = SidecarClient.fromInfo(info);
  } catch {
    return false;
  }
  try {
    // a sidecar that does not answer at once (stopped, hung) is not waited for: act from the record
    await client.call("sidecar.ping", {}, { timeout: 3000 });
    await client.call(
      "jobs.kill",
      { job: rec.id, grace_ms: graceMs },
      { timeout: graceMs + 120_000 },
    );
  } catch (err) {
    if (isSidecarError(err, "JOB_FINISHED")) throw err;
    if (!isSidecarError(err, "UNREACHABLE") && !isSidecarError(err, "TIMEOUT")) throw err;
    return false;
  } finally {
    client.close();
  }
  return true;
}

export function registerJobs(program: Command): void {
  program
    .command("jobs")
    .description(
      "list your jobs (from any terminal): id, state, start, command, pools, tunnels, remote blocks",
    )
    .option("--running", "only jobs that still run")
    .option("--json", "machine-readable output")
    .action(async (opts: ListOpts) => {
      try {
        const store = new JobStore(defaultStateDir());
        const hosts = await openHosts();
        const stopAnswering = answerPromptsInProcess(hosts.prompts);
        const out: JobRecord[] = [];
        try {
          for (const rec of store.list()) out.push(await reconcile(store, rec, hosts.hosts));
        } finally {
          stopAnswering();
          await hosts.close();
        }
        const shown = opts.running ? out.filter((r) => !isFinal(r.state)) : out;
        if (opts.json)
          return printJson({
            jobs: shown.map((r) => ({ ...r, live: !isFinal(r.state) && supervisorAlive(r) })),
          });
        printTable(shown.map(summary), [
          "job",
          "state",
          "started",
          "exit",
          "pools",
          "tunnels",
          "blocks",
          "command",
        ]);
      } catch (err) {
        fail(err, opts);
      }
    });

  program
    .command("kill")
    .description(
      "stop a job from any terminal: SIGTERM to all its processes (here and on its pools), SIGKILL after --grace, scheduler jobs cancelled, tunnels closed",
    )
    .argument("<job>", "the job id (see `parsl-sidecar jobs`)")
    .option(
      "--grace <duration>",
      "time between SIGTERM and SIGKILL",
      formatDuration(DEFAULT_GRACE_MS),
    )
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: KillOpts) => {
      try {
        const graceMs = parseDuration(opts.grace, "--grace");
        const store = new JobStore(defaultStateDir());
        let rec = store.read(id);
        if (isFinal(rec.state)) throw finishedError(rec);
        const viaSidecar = supervisorAlive(rec) && (await killThroughSidecar(rec, graceMs));
        rec = store.read(id);
        if (!isFinal(rec.state) && !viaSidecar) {
          const hosts = await openHosts();
          const stopAnswering = answerPromptsInProcess(hosts.prompts);
          try {
            rec = await killFromRecord(store, rec, hosts.hosts, graceMs);
          } finally {
            stopAnswering();
            await hosts.close();
          }
        }
        if (opts.json)
          return printJson({
            job: rec.id,
            state: rec.state,
            exit_code: rec.exit_code,
            reason: rec.reason,
            cleanup: rec.cleanup,
          });
        const c = rec.cleanup;
        const stuck = (n: unknown, who?: unknown): string =>
          Number(n) > 0
            ? `, ${String(n)} would not die${Array.isArray(who) && who.length ? ` (${who.join(", ")})` : ""}`
            : "";
        const remote = (c?.remote ?? [])
          .map(
            (r) =>
              `${String(r.target)}: ${String(r.processes)} processes, ${Number(r.slurm) + Number(r.pbspro)} scheduler jobs${stuck(r.left, r.survivors)}`,
          )
          .join("; ");
        process.stdout.write(
          `job ${rec.id} ${rec.state}${rec.exit_code === null ? "" : ` (exit code ${rec.exit_code})`}: ${c?.local_signalled ?? 0} local processes stopped${stuck(c?.local_left)}${remote ? `; ${remote}` : ""}\n`,
        );
        for (const e of c?.errors ?? []) process.stderr.write(`parsl-sidecar: warning: ${e}\n`);
      } catch (err) {
        fail(err, opts);
      }
    });
}
