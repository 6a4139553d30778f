/**
 * `parsl-sidecar run [--job NAME] [--timeout D] -- COMMAND...`: give the run a job id, start a
 * sidecar (or use --connection), prepare environments/executors/tunnels, run COMMAND in its own
 * process group with PARSL_SIDECAR_JOB and PARSL_SIDECAR_CONNECTION_FILE set, tear everything
 * down when it ends, and exit with its exit code (128+signal when killed, 124 on a timeout).
 */
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { Option, type Command } from "commander";
import { resolveConnectionFile, SidecarClient } from "../../client/client.js";
import { Daemon } from "../../daemon/daemon.js";
import { EventBus } from "../../events.js";
import { connectionPreparers } from "../../jobs/connection-preparers.js";
import { EXECUTORS_ENV } from "../../jobs/executors-preparer.js";
import { checkJobId, newJobId } from "../../jobs/job-id.js";
import { openHosts, type OwnedHosts } from "../../jobs/hosts.js";
import type { JobsModule } from "../../jobs/methods.js";
import { DEFAULT_GRACE_MS, JobsService } from "../../jobs/service.js";
import {
  CONNECTION_ENV,
  defaultRuntimeDir,
  readConnectionFile,
} from "../../rpc/connection-file.js";
import { ensurePrivateDir } from "../../util/private-dir.js";
import { parseDuration } from "../../util/duration.js";
import { LOG_LEVELS, silentLogger, type LogLevel } from "../../util/logger.js";
import { defaultStateDir } from "../../util/paths.js";
import { fail } from "../output.js";
import { answerPromptsInProcess, answerPromptsOverRpc } from "../prompts.js";
import { reviewOrCancel } from "../review.js";
import type { SshModule } from "../../ssh/module.js";
import { printPageLink } from "./ui.js";

interface RunOptions {
  job?: string;
  executors?: string;
  env?: string[];
  timeout?: string;
  grace?: string;
  connection?: string;
  logLevel: LogLevel;
  json?: boolean;
  quiet?: boolean;
  review?: boolean;
  ui?: boolean;
  complete: boolean;
}

export function registerRun(program: Command): void {
  program
    .command("run")
    .description(
      "run COMMAND as a job: start a sidecar, prepare its pools, run it, and tear everything down when it ends",
    )
    .argument("<command...>", "the workflow command, after --, e.g. -- python main.py")
    .option("--job <name>", "job id to use instead of a generated job-<dir>-<date>-<random>")
    .option(
      "--executors <file>",
      "executors.json to complete (hosts, ports, worker tunnels) before COMMAND starts; COMMAND gets the completed copy as $PARSL_SIDECAR_EXECUTORS",
    )
    .option(
      "--no-complete",
      "do not complete --executors here; COMMAND gets the file as it is (its parsl_config completes it)",
    )
    .option(
      "--env <spec>",
      "an environment to ensure before COMMAND starts: local.conf (activated for COMMAND) or TARGET=FILE.conf (repeatable)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option(
      "--timeout <duration>",
      "stop the job after this long (e.g. 30s, 5m, 1h; 0: no limit, the default); exit code 124",
    )
    .option("--grace <duration>", "time between SIGTERM and SIGKILL when stopping", "10s")
    .option("--connection <file>", "use this running sidecar instead of starting one")
    .addOption(
      new Option("--log-level <level>", "sidecar log level on stderr")
        .choices(LOG_LEVELS)
        .default("warn"),
    )
    .option("--json", "print a JSON summary on stdout when COMMAND ends")
    .option("-q, --quiet", "do not print the job id")
    .option(
      "--ui",
      "print a link to the sidecar's live page (jobs, pools, tunnels, transfers, log) before COMMAND starts",
    )
    .option(
      "--review",
      "before COMMAND starts, review the executors file (--executors, default executors.json) on the local page (Cancel exits 4)",
    )
    .passThroughOptions()
    .action(async (command: string[], opts: RunOptions) => {
      let daemon: Daemon | undefined;
      let privateDir: string | undefined;
      let hosts: OwnedHosts | undefined;
      let client: SidecarClient | undefined;
      // this terminal answers what pools ask while the job runs (its preparers, COMMAND's calls)
      const stopAnswering: Array<() => unknown> = [];
      const quiet = async (): Promise<void> => {
        for (const stop of stopAnswering.splice(0)) await stop();
      };
      try {
        const id = opts.job ? checkJobId(opts.job) : newJobId(process.cwd());
        const timeoutMs =
          opts.timeout === undefined ? undefined : parseDuration(opts.timeout, "--timeout");
        const graceMs =
          opts.grace === undefined ? DEFAULT_GRACE_MS : parseDuration(opts.grace, "--grace");
        let jobs: JobsService;
        let sidecar: { pid: number; connection_file: string };
        if (opts.connection) {
          const file = resolve(resolveConnectionFile(opts.connection));
          sidecar = { pid: readConnectionFile(file).pid, connection_file: file };
          hosts = await openHosts();
          stopAnswering.push(answerPromptsInProcess(hosts.prompts));
          jobs = new JobsService({
            stateDir: defaultStateDir(),
            log: silentLogger,
            events: new EventBus(),
            hosts: hosts.hosts,
          });
          client = SidecarClient.connect(file);
          stopAnswering.push(await answerPromptsOverRpc(client, { job: id, unattended: true }));
          if (opts.executors || opts.env?.length) {
            // environments, executors and tunnels are the running sidecar's, asked over its RPC
            privateDir = ensurePrivateDir(join(defaultRuntimeDir(), `run-${process.pid}`));
            for (const p of connectionPreparers(client, privateDir)) jobs.addPreparer(p);
          }
        } else {
          privateDir = ensurePrivateDir(join(defaultRuntimeDir(), `run-${process.pid}`));
          daemon = await Daemon.start({ runtimeDir: privateDir, stderrLevel: opts.logLevel });
          sidecar = { pid: process.pid, connection_file: daemon.connectionFile };
          jobs = (daemon.getModule("jobs") as JobsModule).service;
          const ssh = daemon.getModule("ssh") as SshModule | undefined;
          if (ssh)
            stopAnswering.push(
              answerPromptsInProcess(ssh.connections.prompts, { job: id, unattended: true }),
            );
        }
        if (opts.ui) await printPageLink(sidecar.connection_file);
        if (opts.review)
          await reviewOrCancel(sidecar.connection_file, opts.executors ?? "executors.json");
        if (!opts.quiet) process.stderr.write(`parsl-sidecar: job ${id}\n`);
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          [CONNECTION_ENV]: sidecar.connection_file,
        };
        if (opts.executors && !opts.complete) env[EXECUTORS_ENV] = resolve(opts.executors);
        const runner = jobs.start({
          id,
          command,
          cwd: process.cwd(),
          env,
          graceMs,
          sidecar,
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
          ...(opts.executors && opts.complete ? { executors: resolve(opts.executors) } : {}),
          ...(opts.env?.length ? { envs: opts.env } : {}),
        });
        const out = await runner.done;
        await quiet();
        if (out.error) process.stderr.write(`parsl-sidecar: ${out.error}\n`);
        else if (out.record.state === "timed-out" || out.record.state === "killed")
          process.stderr.write(
            `parsl-sidecar: job ${id} ${out.record.state}: ${out.record.reason}\n`,
          );
        await daemon?.close(`job ${id} ended: ${out.record.state}`);
        await hosts?.close();
        client?.close();
        if (privateDir) rmSync(privateDir, { recursive: true, force: true });
        if (opts.json) {
          const r = out.record;
          process.stdout.write(
            `${JSON.stringify({ job: id, state: r.state, exit_code: out.exitCode, signal: r.signal, reason: r.reason, started_at: r.started_at, ended_at: r.ended_at, cleanup: r.cleanup })}\n`,
          );
        }
        process.exit(out.exitCode);
      } catch (err) {
        await quiet().catch(() => undefined);
        await daemon?.close("run failed").catch(() => undefined);
        await hosts?.close().catch(() => undefined);
        client?.close();
        if (privateDir) rmSync(privateDir, { recursive: true, force: true });
        fail(err, opts);
      }
    });
}
