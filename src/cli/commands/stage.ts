/** `parsl-sidecar stage SRC DST`: copy between any two stores here, with a progress bar. */
import { resolve } from "node:path";
import type { Command } from "commander";
import { SidecarError } from "../../errors.js";
import type { ProgressSnapshot } from "../../staging/progress.js";
import { fail, formatBytes, printJson } from "../output.js";

interface Opts {
  type: string;
  cwd?: string;
  host?: string;
  json?: boolean;
  quiet?: boolean;
}

function bar(p: ProgressSnapshot, width = 24): string {
  const frac =
    p.total_bytes > 0
      ? Math.min(1, p.bytes / p.total_bytes)
      : p.total_files > 0
        ? p.files / p.total_files
        : 0;
  const filled = Math.round(frac * width);
  const pct = `${Math.floor(frac * 100)}%`.padStart(4);
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${pct} ${formatBytes(p.bytes)}/${formatBytes(p.total_bytes)}  ${p.files}/${p.total_files} files  ${formatBytes(p.rate_bps)}/s`;
}

/** Progress on stderr: redrawn in place on a terminal, a line every 2 s otherwise. */
function progressPrinter(): { update(p: ProgressSnapshot): void; done(): void } {
  const tty = process.stderr.isTTY === true;
  let last = Date.now();
  let drawn = false;
  return {
    update(p) {
      const now = Date.now();
      if (tty) {
        process.stderr.write(`\r${bar(p)}\x1b[K`);
        drawn = true;
      } else if (now - last >= 2000) {
        process.stderr.write(`${bar(p)}\n`);
        last = now;
      }
    },
    done() {
      if (drawn) process.stderr.write("\n");
    },
  };
}

/** A relative local path is taken from the current directory (only here, not over RPC). */
export function cliPath(arg: string): string {
  if (arg.includes("://") || arg.startsWith("/") || /^[^/]+:\//.test(arg)) return arg;
  return resolve(arg);
}

export function registerStage(program: Command): void {
  program
    .command("stage")
    .description(
      "copy a file or directory from SRC to DST, verified and written under a temporary name; identical files are skipped",
    )
    .argument(
      "<src>",
      "file://, pw://, s3://bucket/key, gs://bucket/key, ssh://TARGET/abs/path, TARGET:/abs/path, or an absolute local path",
    )
    .argument("<dst>", "same forms as SRC")
    .option("--type <type>", "file, directory, or auto (look at SRC)", "auto")
    .option("--cwd <dir>", "what {cwd} in a URL stands for (default: the current directory)")
    .option("--host <target>", "where bare absolute paths live (default: this machine)")
    .option("--json", "print the result as JSON on stdout")
    .option("--quiet", "no progress bar")
    .addHelpText(
      "after",
      "\nExamples:\n  parsl-sidecar stage ./results.tar s3://bucket/runs/7/results.tar\n  parsl-sidecar stage gs://bucket/inputs cluster:/scratch/me/inputs --type directory\n  parsl-sidecar stage ssh://me@head/scratch/out file:///home/me/out",
    )
    .action(async (src: string, dst: string, opts: Opts) => {
      try {
        if (!["file", "directory", "auto"].includes(opts.type))
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Expected --type to be file, directory or auto, got \`${opts.type}\``,
          );
        const { runStage } = await import("../stage-run.js");
        const printer = opts.quiet || opts.json ? undefined : progressPrinter();
        const res = await runStage(
          {
            src: cliPath(src),
            dst: cliPath(dst),
            type: opts.type as "file" | "directory" | "auto",
            cwd: opts.cwd ?? process.cwd(),
            host: opts.host,
          },
          (p) => printer?.update(p),
        ).finally(() => printer?.done());
        if (opts.json) printJson(res);
        else {
          const what =
            res.skipped > 0 && res.files === 0
              ? "already up to date"
              : `${res.files} file${res.files === 1 ? "" : "s"}, ${formatBytes(res.bytes)}`;
          const skipped =
            res.skipped > 0 && res.files > 0 ? ` (${res.skipped} identical skipped)` : "";
          process.stdout.write(
            `${res.src} -> ${res.dst}: ${what}${skipped} in ${(res.duration_ms / 1000).toFixed(2)} s${res.sha256 ? `\nsha256 ${res.sha256}` : ""}\n`,
          );
        }
      } catch (err) {
        fail(err, opts);
      }
    });
}
