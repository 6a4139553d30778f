/** `parsl-sidecar serve`: run the sidecar in the foreground, or --detach it and wait for a ping. */
import { spawn } from "node:child_process";
import { openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { InvalidArgumentError, Option, type Command } from "commander";
import { SidecarClient } from "../../client/client.js";
import { Daemon } from "../../daemon/daemon.js";
import { watchOwner } from "../../daemon/owner.js";
import { nodeFlags } from "../node-flags.js";
import { SidecarError } from "../../errors.js";
import {
  CONNECTION_FILE_NAME,
  type ConnectionInfo,
  defaultRuntimeDir,
  pidAlive,
  readConnectionFile,
} from "../../rpc/connection-file.js";
import { ensurePrivateDir } from "../../util/private-dir.js";
import { LOG_LEVELS, type LogLevel } from "../../util/logger.js";
import { sleep } from "../../util/timeout.js";
import { fail, printJson } from "../output.js";

interface ServeOptions {
  endpoint?: string;
  allowRemote?: boolean;
  runtimeDir?: string;
  detach?: boolean;
  logLevel: LogLevel;
  json?: boolean;
  ownerPid?: number;
  ownerStdin?: boolean;
}

function parsePid(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`expected a process id (a positive integer), got ${v}`);
  return n;
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("run the sidecar daemon (foreground unless --detach)")
    .option(
      "--endpoint <url>",
      "ipc://PATH or tcp://127.0.0.1:PORT (default: ipc:// in the runtime directory)",
    )
    .option("--allow-remote", "allow a non-loopback tcp:// endpoint (prints a warning)")
    .option(
      "--runtime-dir <dir>",
      "where the connection file, socket and log live (default: $XDG_RUNTIME_DIR/parsl-sidecar or /tmp/parsl-sidecar-UID)",
    )
    .option("--detach", "start in the background and return once it answers a ping")
    .addOption(
      new Option("--log-level <level>", "stderr log level").choices(LOG_LEVELS).default("info"),
    )
    .option(
      "--owner-pid <pid>",
      "stop, with everything the sidecar holds, when process PID exits (checked every second)",
      parsePid,
    )
    .option(
      "--owner-stdin",
      "stdin is a pipe whose other end the owner holds: stop, with everything, when it closes",
    )
    .option("--json", "machine-readable output")
    .action(async (opts: ServeOptions) => {
      try {
        if (opts.detach && opts.ownerStdin)
          throw new SidecarError(
            "INVALID_ARGUMENT",
            "--owner-stdin needs a foreground sidecar: the detached one's stdin is not the owner's pipe",
          );
        if (opts.detach) await detach(opts);
        else await foreground(opts);
      } catch (err) {
        fail(err, opts);
      }
    });
}

async function foreground(opts: ServeOptions): Promise<void> {
  const daemon = await Daemon.start({
    ...(opts.runtimeDir ? { runtimeDir: opts.runtimeDir } : {}),
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    allowRemote: opts.allowRemote ?? false,
    stderrLevel: opts.logLevel,
  });
  const onSignal = (sig: NodeJS.Signals): void => void daemon.close(`received ${sig}`);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  if (opts.ownerPid !== undefined || opts.ownerStdin)
    watchOwner(
      {
        ...(opts.ownerPid === undefined ? {} : { pid: opts.ownerPid }),
        ...(opts.ownerStdin ? { stdin: process.stdin } : {}),
      },
      (reason) => {
        daemon.log.info({ reason }, "the sidecar's owner is gone; stopping");
        void daemon.close(reason);
      },
    );
  if (opts.json)
    printJson({
      connection_file: daemon.connectionFile,
      endpoint: daemon.info.endpoint,
      pid: process.pid,
    });
  else
    process.stderr.write(
      `parsl-sidecar: listening on ${daemon.info.endpoint}\nparsl-sidecar: connection file ${daemon.connectionFile}\n`,
    );
  await daemon.closed();
  process.exit(0);
}

async function detach(opts: ServeOptions): Promise<void> {
  const runtimeDir = ensurePrivateDir(opts.runtimeDir ?? defaultRuntimeDir());
  const file = join(runtimeDir, CONNECTION_FILE_NAME);
  const errPath = join(runtimeDir, "serve.stderr");
  const script = process.argv[1]!;
  const args = [
    ...nodeFlags(script),
    script,
    "serve",
    "--runtime-dir",
    runtimeDir,
    "--log-level",
    "warn",
  ];
  if (opts.endpoint) args.push("--endpoint", opts.endpoint);
  if (opts.allowRemote) args.push("--allow-remote");
  if (opts.ownerPid !== undefined) args.push("--owner-pid", String(opts.ownerPid));
  const errFd = openSync(errPath, "w", 0o600);
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ["ignore", "ignore", errFd],
  });
  child.unref();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    await sleep(50); // the child is unref'd: only this timer keeps us here
    if (!pidAlive(child.pid!)) {
      const why = readFileSync(errPath, "utf8")
        .trim()
        .replace(/^parsl-sidecar: /, "");
      throw new SidecarError("ALREADY_RUNNING", why || "the detached sidecar exited at start");
    }
    let info: ConnectionInfo;
    try {
      info = readConnectionFile(file);
    } catch {
      continue;
    }
    if (info.pid !== child.pid) continue;
    const client = SidecarClient.fromInfo(info);
    try {
      await client.call("sidecar.ping", {}, { timeout: 2000 });
    } catch {
      continue;
    } finally {
      client.close();
    }
    if (opts.json) printJson({ connection_file: file, endpoint: info.endpoint, pid: info.pid });
    else process.stdout.write(`${file}\n`);
    return;
  }
  throw new SidecarError(
    "TIMEOUT",
    `The detached sidecar did not answer within 15 s; see ${errPath}`,
  );
}
