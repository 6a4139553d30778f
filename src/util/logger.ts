/**
 * Structured logs: JSON lines to a file (owner-only) and a short human form to stderr, each with
 * its own level. Secrets are redacted by key name before anything is written.
 */
import { openSync, writeSync } from "node:fs";
import { pino, type Logger as PinoLogger, type Level } from "pino";

export type Logger = PinoLogger;
export type LogLevel = Level | "silent";
/** the levels `--log-level` takes, most verbose first */
export const LOG_LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warn",
  "error",
  "fatal",
  "silent",
];

const SECRET_KEYS = [
  "key",
  "secret",
  "password",
  "passphrase",
  "token",
  "credentials",
  "secretAccessKey",
  "accessKeyId",
  "sessionToken",
  "authorization",
  "privateKey",
];
export const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

const LEVEL_NAMES: Record<number, string> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};

/** A pino destination that prints `HH:MM:SS level msg key=value` lines. */
function humanStream(out: NodeJS.WritableStream): { write(line: string): void } {
  return {
    write(line: string) {
      try {
        const {
          time,
          level,
          msg,
          pid: _pid,
          hostname: _h,
          ...rest
        } = JSON.parse(line) as Record<string, unknown>;
        const t = new Date(Number(time)).toISOString().slice(11, 19);
        const extras = Object.entries(rest)
          .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
          .join(" ");
        out.write(
          `${t} ${LEVEL_NAMES[Number(level)] ?? level} ${String(msg ?? "")}${extras ? ` ${extras}` : ""}\n`,
        );
      } catch {
        out.write(line);
      }
    },
  };
}

export interface LoggerOptions {
  /** JSON-lines log file, created with mode 0600 */
  file?: string;
  fileLevel?: LogLevel;
  /** level of the human lines on stderr */
  stderrLevel?: LogLevel;
  base?: Record<string, unknown>;
  /** also hand each record (already redacted) at `level` or above to `write`, e.g. to emit `log` events */
  tap?: { level: LogLevel; write(record: Record<string, unknown>): void };
}

/** A pino destination that parses each JSON line and hands `{level, msg, time, ...fields}` to `write`. */
function tapStream(write: (record: Record<string, unknown>) => void): {
  write(line: string): void;
} {
  return {
    write(line: string) {
      try {
        const {
          level,
          pid: _pid,
          hostname: _h,
          ...rest
        } = JSON.parse(line) as Record<string, unknown>;
        write({ ...rest, level: LEVEL_NAMES[Number(level)] ?? String(level) });
      } catch {
        // a line that does not parse is not worth an event
      }
    },
  };
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const streams: pino.StreamEntry[] = [];
  if (opts.file) {
    const fd = openSync(opts.file, "a", 0o600);
    // one write(2) per line: nothing is lost when the process dies, and no fsync at exit (pino's
    // own destination flushes with an fsync when the process exits, ~10 ms of every `run`)
    streams.push({
      level: (opts.fileLevel ?? "debug") as Level,
      stream: { write: (line: string) => void writeSync(fd, line) },
    });
  }
  if (opts.stderrLevel && opts.stderrLevel !== "silent") {
    streams.push({ level: opts.stderrLevel, stream: humanStream(process.stderr) });
  }
  if (opts.tap && opts.tap.level !== "silent") {
    streams.push({ level: opts.tap.level, stream: tapStream(opts.tap.write) });
  }
  if (streams.length === 0) return pino({ level: "silent" });
  const minLevel = streams
    .map((s) => pino.levels.values[s.level as string] ?? 30)
    .reduce((a, b) => Math.min(a, b));
  return pino(
    {
      level: pino.levels.labels[minLevel] ?? "info",
      base: opts.base ?? {},
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    },
    pino.multistream(streams),
  );
}

export const silentLogger: Logger = pino({ level: "silent" });
