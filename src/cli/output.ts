/** Rendering for the CLI: human text by default, one JSON document with --json. */
import { isSidecarError, SidecarError } from "../errors.js";
import { EXIT, exitCodeFor } from "../exit-codes.js";

export interface OutputOptions {
  json?: boolean;
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Print a table of rows with the given columns (human form). */
export function printTable(rows: Array<Record<string, unknown>>, columns: string[]): void {
  if (rows.length === 0) {
    process.stdout.write("(none)\n");
    return;
  }
  const cells = rows.map((r) => columns.map((c) => formatCell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i]!.length)));
  const line = (vals: string[]): string =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${line(columns.map((c) => c.toUpperCase()))}\n`);
  for (const row of cells) process.stdout.write(`${line(row)}\n`);
}

function formatCell(v: unknown): string {
  if (v === undefined || v === null) return "-";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** A known error prints its message (not a stack) and exits with its documented code. */
export function fail(err: unknown, opts: OutputOptions = {}): never {
  const e = isSidecarError(err)
    ? err
    : new SidecarError("INTERNAL", err instanceof Error ? err.message : String(err), {
        cause: err,
      });
  if (opts.json) process.stdout.write(`${JSON.stringify({ error: e.toPayload() })}\n`);
  process.stderr.write(
    `parsl-sidecar: ${e.message}${e.code === "INTERNAL" ? ` (code ${e.code})` : ""}\n`,
  );
  if (e.code === "INTERNAL" && process.env.PARSL_SIDECAR_DEBUG && err instanceof Error)
    process.stderr.write(`${err.stack}\n`);
  process.exit(exitCodeFor(e.code));
}

export { EXIT };
