/** Durations on the command line: `1500ms`, `30s`, `5m`, `1h`, `1h30m`, or a bare number of seconds. */
import { SidecarError } from "../errors.js";

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parse a duration into milliseconds.
 * @example parseDuration("5m") // 300000
 */
export function parseDuration(text: string, what = "duration"): number {
  const s = String(text).trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Math.round(Number(s) * 1000);
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (s === "" || parts.length === 0 || parts.map((p) => p[0]).join("") !== s) {
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected \`${what}\` to be a duration such as 1500ms, 30s, 5m, 1h or 1h30m; got \`${text}\``,
    );
  }
  return Math.round(parts.reduce((ms, p) => ms + Number(p[1]) * UNIT_MS[p[2]!]!, 0));
}

/** Render milliseconds the way parseDuration reads them (`1.5s`, `2m`, `250ms`). */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Math.round(ms / 100) / 10}s`;
  if (ms < 3_600_000) return `${Math.round(ms / 6000) / 10}m`;
  return `${Math.round(ms / 360_000) / 10}h`;
}
