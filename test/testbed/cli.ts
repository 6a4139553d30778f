// Test bed CLI for Python tests and benchmarks:
//   npx tsx test/testbed/cli.ts up KIND [--json] [options]
// Prints ONE JSON line describing the servers, keeps them up until stdin closes or
// SIGTERM/SIGINT/SIGHUP arrives, then stops them all. Diagnostics go to stderr.
import { parseArgs } from "node:util";
import { KINDS, type KindOptions } from "./cli-kinds.js";
import { stopAll } from "./registry.js";

const USAGE = `usage: cli.ts up KIND [--json] [options]
KIND: ${Object.keys(KINDS).join(" | ")}
options:
  --json                 print the description as one JSON line (the default; accepted for clarity)
  --no-stdin             do not stop when stdin closes (only on SIGTERM/SIGINT)
  --netns NS             sshd: run inside this existing network namespace
  --host ADDR            sshd: listen address (default 127.0.0.1)
  --extra-config LINE    sshd, cert, otp: extra sshd_config line (repeatable)
  --encrypted-key        sshd: also make a passphrase-protected key
  --unauthorized-key     sshd: also make a key that is not authorized
  --backend NAME         gcs: memory | filesystem (default memory)
  --slurm                topology: also run Slurm (slurmctld in head, slurmd in compute)
  --compute-sshd         topology: also run an sshd in the compute namespace
  --topology             slurm: same as "up topology --slurm"
  --sshd                 slurm: also an sshd on 127.0.0.1 whose sessions have SLURM_CONF set
  --control-master       otp: also open a ControlMaster (code via askpass) at the alias's ControlPath`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      json: { type: "boolean" },
      "no-stdin": { type: "boolean" },
      netns: { type: "string" },
      host: { type: "string" },
      "extra-config": { type: "string", multiple: true },
      "encrypted-key": { type: "boolean" },
      "unauthorized-key": { type: "boolean" },
      backend: { type: "string" },
      slurm: { type: "boolean" },
      "compute-sshd": { type: "boolean" },
      topology: { type: "boolean" },
      sshd: { type: "boolean" },
      "control-master": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const [command, kind] = positionals;
  if (values.help || command !== "up" || !kind || !(kind in KINDS)) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }

  let stopping: Promise<void> | undefined;
  const shutdown = (why: string): Promise<void> => {
    stopping ??= (async () => {
      process.stderr.write(`testbed: stopping ${kind} (${why})\n`);
      await stopAll();
    })();
    return stopping;
  };
  const done = new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
      process.on(sig, () => void shutdown(sig).then(resolve));
    }
    if (!values["no-stdin"]) {
      process.stdin.on("end", () => void shutdown("stdin closed").then(resolve));
      process.stdin.on("error", () => void shutdown("stdin error").then(resolve));
      process.stdin.resume();
    }
  });

  const opts: KindOptions = {
    netns: values.netns,
    host: values.host,
    extraConfig: values["extra-config"],
    encryptedKey: values["encrypted-key"],
    unauthorizedKey: values["unauthorized-key"],
    backend: values.backend,
    slurm: values.slurm,
    computeSshd: values["compute-sshd"],
    topology: values.topology,
    sshd: values.sshd,
    controlMaster: values["control-master"],
  };
  let info: Record<string, unknown>;
  try {
    info = await KINDS[kind]!(opts);
  } catch (err) {
    const msg = stopping
      ? "stopped before it was ready"
      : err instanceof Error
        ? err.message
        : String(err);
    process.stderr.write(`testbed: failed to start ${kind}: ${msg}\n`);
    await shutdown("start failed");
    return 1;
  }
  process.stdout.write(`${JSON.stringify({ kind, ...info })}\n`);
  await done;
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`testbed: ${err instanceof Error ? err.message : String(err)}\n`);
    void stopAll().finally(() => process.exit(1));
  },
);
