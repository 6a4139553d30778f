/** `parsl-sidecar ssh exec|check|list`: remote commands and connections through the sidecar. */
import type { Command } from "commander";
import { SidecarError } from "../../errors.js";
import { withClient } from "../client.js";
import { EXIT, fail, printJson, printTable } from "../output.js";
import { parsePreference } from "../../ssh/transport-choice.js";

interface Opts {
  connection?: string;
  json?: boolean;
  timeout?: string;
  cwd?: string;
  env?: string[];
}

interface WireExec {
  exit_code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timed_out: boolean;
}

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

function parseEnv(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf("=");
    if (eq <= 0)
      throw new SidecarError("INVALID_ARGUMENT", `Expected --env NAME=VALUE, got \`${kv}\``);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return env;
}

export function registerSsh(program: Command): void {
  const ssh = program
    .command("ssh")
    .description("run commands on pools and inspect the sidecar's SSH connections");

  ssh
    .command("exec")
    .description(
      "run a shell command on TARGET (user@host[:port], an ssh config alias, or `local`) and exit with its exit code",
    )
    .argument("<target>", "where to run")
    .argument("<command...>", "the command (put `--` before it)")
    .option("--cwd <dir>", "working directory on the target")
    .option("--env <NAME=VALUE...>", "environment variables for the command")
    .option("--timeout <ms>", "kill the remote process group after this many ms")
    .option("--connection <file>", "connection file")
    .option("--json", "print the result as JSON instead of passing the output through")
    .action(async (target: string, command: string[], opts: Opts) => {
      try {
        const timeoutMs = opts.timeout === undefined ? undefined : Number(opts.timeout);
        if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs <= 0))
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Expected --timeout to be a positive whole number of ms, got \`${opts.timeout}\``,
          );
        const params: Record<string, unknown> = {
          target,
          command: command.join(" "),
          stream: !opts.json,
        };
        const env = parseEnv(opts.env);
        if (env) params.env = env;
        if (opts.cwd) params.cwd = opts.cwd;
        if (timeoutMs !== undefined) params.timeout_ms = timeoutMs;
        const r = await withClient(opts.connection, (c) =>
          c.call<WireExec>("ssh.exec", params, {
            timeout: (timeoutMs ?? 0) > 0 ? timeoutMs! + 30_000 : 0,
            onProgress: (p) =>
              (p.stream === "stderr" ? process.stderr : process.stdout).write(String(p.data ?? "")),
          }),
        );
        if (opts.json) return printJson(r);
        if (r.timed_out)
          process.stderr.write(`parsl-sidecar: the command timed out and was killed\n`);
        process.exitCode = r.timed_out
          ? EXIT.TIMEOUT
          : (r.exit_code ?? (r.signal ? EXIT.SIGNAL_BASE + (SIGNALS[r.signal] ?? 0) : EXIT.ERROR));
      } catch (err) {
        fail(err, opts);
      }
    });

  ssh
    .command("check")
    .description(
      "connect to TARGET and report server version, host key fingerprint, cipher and latency",
    )
    .argument("<target>", "user@host[:port] or an ssh config alias")
    .option("--connection <file>", "connection file")
    .option(
      "--transport <kind>",
      "auto, openssh or ssh2, for a connection this opens (default $PARSL_SIDECAR_SSH_TRANSPORT, else auto)",
    )
    .option("--json", "machine-readable output")
    .action(async (target: string, opts: Opts & { transport?: string }) => {
      try {
        const params = opts.transport
          ? { target, transport: parsePreference(opts.transport, "--transport") }
          : { target };
        const r = await withClient(opts.connection, (c) =>
          c.call<Record<string, unknown>>("ssh.check", params, { timeout: 60_000 }),
        );
        if (opts.json) return printJson(r);
        process.stdout.write(
          `${target}: ${r.ok ? "ok" : "FAILED"}  ${String(r.user)}@${String(r.host)}:${String(r.port)}  ${String(r.server_version)}\n`,
        );
        if (r.transport)
          process.stdout.write(
            `transport ${String(r.transport)} (${String(r.transport_why)})${r.ssh_version ? `  ${String(r.ssh_version)}` : ""}\n`,
          );
        process.stdout.write(
          `host key ${String(r.fingerprint)}  cipher ${String(r.cipher)}  round trip ${String(r.latency_ms)} ms\n`,
        );
      } catch (err) {
        fail(err, opts);
      }
    });

  ssh
    .command("list")
    .description("the sidecar's open SSH connections")
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (opts: Opts) => {
      try {
        const rows = await withClient(opts.connection, (c) =>
          c.call<Array<Record<string, unknown>>>("ssh.list", {}, { timeout: 10_000 }),
        );
        if (opts.json) return printJson(rows);
        printTable(rows, [
          "target",
          "state",
          "user",
          "host",
          "port",
          "reconnects",
          "leases",
          "cipher",
          "last_error",
        ]);
      } catch (err) {
        fail(err, opts);
      }
    });
}
