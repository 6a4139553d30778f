/**
 * The connection file: where the sidecar listens and the key that signs its messages. Written
 * atomically with mode 0600 in a runtime directory of mode 0700; a stale one (its process gone)
 * is replaced, a live one is never overwritten.
 */
import { randomBytes } from "node:crypto";
import { lstatSync, readFileSync, renameSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { SidecarError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { parseOrThrow } from "../util/validation.js";
import { SIGNATURE_SCHEME } from "./envelope.js";

export const ConnectionInfoSchema = z.object({
  endpoint: z.string().min(1),
  protocol_version: z.number().int(),
  signature_scheme: z.literal(SIGNATURE_SCHEME),
  key: z.string().regex(/^[0-9a-f]{64}$/, "64 hex digits"),
  pid: z.number().int().positive(),
  started_at: z.string(),
  version: z.string(),
  log_file: z.string().optional(),
  /** optional protocol features the sidecar speaks (e.g. "batch") */
  features: z.array(z.string()).optional(),
  /**
   * what the sidecar takes from a peer (docs/protocol.md, Limits); absent in the files of older
   * sidecars, whose limits are the defaults
   */
  limits: z
    .object({
      message_bytes: z.number().int().positive().optional(),
      pending_bytes: z.number().int().positive().optional(),
    })
    .optional(),
});
export type ConnectionInfo = z.infer<typeof ConnectionInfoSchema>;

export const CONNECTION_ENV = "PARSL_SIDECAR_CONNECTION_FILE";
export const CONNECTION_FILE_NAME = "sidecar.json";

/** The per-user runtime directory: $PARSL_SIDECAR_RUNTIME_DIR, $XDG_RUNTIME_DIR/parsl-sidecar, or /tmp/parsl-sidecar-UID. */
export function defaultRuntimeDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PARSL_SIDECAR_RUNTIME_DIR) return env.PARSL_SIDECAR_RUNTIME_DIR;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "parsl-sidecar");
  return join(tmpdir(), `parsl-sidecar-${process.getuid?.() ?? "user"}`);
}

export function newKey(): Buffer {
  return randomBytes(32);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function readConnectionFile(
  path: string,
  opts: { checkMode?: boolean } = {},
): ConnectionInfo {
  let text: string;
  try {
    if (opts.checkMode !== false) {
      const st = lstatSync(path);
      if ((st.mode & 0o077) !== 0) {
        throw new SidecarError(
          "BAD_CONNECTION_FILE",
          `Connection file ${path} can be read by others (mode ${(st.mode & 0o777).toString(8)}); it holds the signing key. Run \`chmod 600 ${path}\` if you trust it, or start a new sidecar.`,
        );
      }
    }
    text = readFileSync(path, "utf8");
  } catch (err) {
    if (err instanceof SidecarError) throw err;
    throw new SidecarError(
      "UNREACHABLE",
      `No sidecar connection file at ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); start one with \`parsl-sidecar serve --detach\``,
      { cause: err },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SidecarError(
      "BAD_CONNECTION_FILE",
      `Connection file ${path} is not JSON: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return parseOrThrow(ConnectionInfoSchema, json, {
    code: "BAD_CONNECTION_FILE",
    what: `connection file ${path}`,
  });
}

/**
 * Publish the connection file atomically and exclusively. A live sidecar's file is never
 * replaced (ALREADY_RUNNING); a stale one is removed first.
 */
export function writeConnectionFile(path: string, info: ConnectionInfo): void {
  const text = `${JSON.stringify(info, null, 2)}\n`;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      // exclusive: fails if the file exists, so that no two sidecars publish at once
      writeFileAtomic(path, text, { mode: 0o600, exclusive: true });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const existing = staleCheck(path);
      if (existing) {
        throw new SidecarError(
          "ALREADY_RUNNING",
          `A sidecar is already running here (pid ${existing.pid}, ${existing.endpoint}); its connection file is ${path}. Stop it with \`parsl-sidecar stop\` or use another --runtime-dir.`,
          { data: { pid: existing.pid, path } },
        );
      }
    }
  }
  throw new SidecarError(
    "ALREADY_RUNNING",
    `Could not publish ${path}: another sidecar keeps replacing it`,
  );
}

/** Returns the live owner of an existing file, or removes a stale (or unreadable) one. */
function staleCheck(path: string): ConnectionInfo | undefined {
  let info: ConnectionInfo | undefined;
  try {
    info = readConnectionFile(path, { checkMode: false });
  } catch {
    info = undefined;
  }
  if (info && info.pid !== process.pid && pidAlive(info.pid)) return info;
  // stale: move it aside atomically, then drop it
  const aside = `${path}.stale.${process.pid}`;
  try {
    renameSync(path, aside);
    unlinkSync(aside);
  } catch {
    /* someone else cleaned it */
  }
  return undefined;
}

export function removeConnectionFile(path: string, pid = process.pid): void {
  try {
    const info = readConnectionFile(path, { checkMode: false });
    if (info.pid === pid) unlinkSync(path);
  } catch {
    /* nothing to remove */
  }
}
