/** `parsl-sidecar executors schema|explain|check|complete|preflight`. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Command } from "commander";
import { SidecarError } from "../../errors.js";
import { checkExecutors, parseExecutorsText } from "../../executors/check.js";
import { explainKeys, explainPools, explainText } from "../../executors/explain.js";
import { executorsJsonSchema } from "../../executors/schema.js";
import { localVersions } from "../../executors/versions.js";
import { withClient } from "../client.js";
import { fail, printJson, printTable } from "../output.js";

interface Opts {
  json?: boolean;
  connection?: string;
  inPlace?: boolean;
  labels?: string;
  owner?: string;
  python?: string;
  timeout?: string;
}

/** Read and parse an executors.json file, with errors naming the file. */
export function readExecutorsFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new SidecarError(
      "EXECUTORS_INVALID",
      `Cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    );
  }
  return parseExecutorsText(text, file);
}

interface CompleteResult {
  executors: Record<string, unknown>;
  written?: string;
  tunnels: Array<Record<string, unknown>>;
  warnings: string[];
}

interface PreflightResult {
  ok: boolean;
  executors: Array<{
    label: string;
    ok: boolean;
    checks: Array<{ name: string; ok: boolean; message: string }>;
  }>;
}

export function registerExecutors(program: Command): void {
  const cmd = program
    .command("executors")
    .description("executors.json: schema, explanation, check, completion and preflight");

  cmd
    .command("schema")
    .description("print the JSON Schema of executors.json (for editors and forms)")
    .action(() => printJson(executorsJsonSchema()));

  cmd
    .command("explain")
    .description("what each key means; with FILE, what each pool in it must provide")
    .argument("[file]", "an executors.json")
    .option(
      "--python <path>",
      "this machine's workflow Python, for the versions pools must match (default: $PARSL_SIDECAR_PYTHON or python3)",
    )
    .option("--json", "machine-readable output")
    .action(async (file: string | undefined, opts: Opts) => {
      try {
        const json = file === undefined ? undefined : readExecutorsFile(file);
        const v = json === undefined ? undefined : await localVersions(opts.python);
        const local = v?.parsl ? { python: v.python, parsl: v.parsl } : undefined;
        if (opts.json)
          return printJson({
            keys: explainKeys(),
            pools: json === undefined ? [] : explainPools(json, local),
            local: local ?? null,
          });
        process.stdout.write(`${explainText(json, local)}\n`);
      } catch (err) {
        fail(err, opts);
      }
    });

  cmd
    .command("check")
    .description("validate an executors.json; errors name the label, key and value")
    .argument("<file>", "an executors.json")
    .option("--json", "machine-readable output")
    .action((file: string, opts: Opts) => {
      try {
        const res = checkExecutors(readExecutorsFile(file));
        if (opts.json) printJson({ file, ...res });
        else {
          for (const w of res.warnings) process.stderr.write(`warning: ${w.message}\n`);
          for (const e of res.errors) process.stderr.write(`error: ${e.message}\n`);
          if (res.ok)
            process.stdout.write(`${file}: OK (${Object.keys(res.executors).join(", ")})\n`);
        }
        if (!res.ok) {
          if (!opts.json)
            process.stderr.write(
              `${file}: ${res.errors.length} error${res.errors.length > 1 ? "s" : ""}\n`,
            );
          process.exit(1);
        }
      } catch (err) {
        fail(err, opts);
      }
    });

  cmd
    .command("complete")
    .description(
      "fill HOST_IP, HOST_USER, ports and dial address, and open the tunnels (needs a running sidecar)",
    )
    .argument("<in>", "an executors.json")
    .argument("[out]", "where to write the completed file (default: print it)")
    .option("--in-place", "rewrite IN")
    .option("--labels <list>", "only these executors, comma separated")
    .option(
      "--owner <owner>",
      "who owns the tunnels (a job id); default: the sidecar keeps them until closed",
    )
    .option("--connection <file>", "connection file")
    .option("--timeout <ms>", "milliseconds to wait (resolvers can poll a while)", "600000")
    .option("--json", "machine-readable output")
    .action(async (input: string, output: string | undefined, opts: Opts) => {
      try {
        if (opts.inPlace && output !== undefined && resolve(output) !== resolve(input))
          throw new SidecarError("INVALID_ARGUMENT", "Give either OUT or --in-place, not both");
        const out = opts.inPlace ? input : output;
        const params: Record<string, unknown> = { path: resolve(input) };
        if (out !== undefined) params.out = resolve(out);
        if (opts.labels)
          params.labels = opts.labels
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean);
        params.owner = opts.owner ?? "sidecar";
        const res = await withClient(opts.connection, (c) =>
          c.call<CompleteResult>("executors.complete", params, {
            timeout: Number(opts.timeout),
            onProgress: (p) =>
              !opts.json &&
              process.stderr.write(
                `${String(p.label ?? "")}: ${String(p.message ?? JSON.stringify(p))}\n`,
              ),
          }),
        );
        if (opts.json) return printJson(res);
        for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
        if (out === undefined) printJson(res.executors);
        else process.stdout.write(`wrote ${out}\n`);
        if (res.tunnels.length > 0)
          printTable(res.tunnels, [
            "label",
            "tunnel_id",
            "interchange_port",
            "dial_address",
            "worker_port",
          ]);
      } catch (err) {
        fail(err, opts);
      }
    });

  cmd
    .command("preflight")
    .description(
      "check each pool before workers start: reachable, tunnel, Python and Parsl versions, writable directories",
    )
    .argument("<file>", "a (completed) executors.json")
    .option("--labels <list>", "only these executors, comma separated")
    .option(
      "--python <path>",
      "this machine's workflow Python (default: $PARSL_SIDECAR_PYTHON or python3)",
    )
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (file: string, opts: Opts) => {
      try {
        const v = await localVersions(opts.python);
        if (!v?.parsl)
          throw new SidecarError(
            "VERSION_SKEW",
            `Cannot read the Python and Parsl versions of this machine's ${opts.python ?? "python3"}${v?.parslError ? ` (${v.parslError})` : ""}; pass --python with the workflow's interpreter`,
          );
        const params: Record<string, unknown> = {
          path: resolve(file),
          local: { python: v.python, parsl: v.parsl },
        };
        if (opts.labels)
          params.labels = opts.labels
            .split(",")
            .map((s) => s.trim())
            .filter(Boolean);
        const res = await withClient(opts.connection, (c) =>
          c.call<PreflightResult>(
            "executors.preflight",
            { ...params, raise: false },
            { timeout: 300_000 },
          ),
        );
        if (opts.json) printJson(res);
        else {
          for (const ex of res.executors) {
            for (const c of ex.checks)
              process.stdout.write(
                `${ex.label}  ${c.ok ? "ok  " : "FAIL"}  ${c.name}: ${c.message}\n`,
              );
          }
        }
        if (!res.ok) process.exit(1);
      } catch (err) {
        fail(err, opts);
      }
    });

  cmd
    .command("release")
    .description(
      "close the worker tunnels and cancel the worker blocks held for OWNER (see `complete --owner`)",
    )
    .argument("<owner>", "the owner given to complete (default owner: sidecar)")
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (ownerName: string, opts: Opts) => {
      try {
        const res = await withClient(opts.connection, (c) =>
          c.call<{ tunnels: number; blocks: number }>(
            "executors.release",
            { owner: ownerName },
            { timeout: 120_000 },
          ),
        );
        if (opts.json) printJson(res);
        else
          process.stdout.write(
            `released ${ownerName}: ${res.tunnels} tunnel(s), ${res.blocks} block(s)\n`,
          );
      } catch (err) {
        fail(err, opts);
      }
    });
}
