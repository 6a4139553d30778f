/** Small HTTP helpers for the page's server: security headers, JSON replies and bodies, errors. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { SidecarError, toSidecarError } from "../errors.js";

const MAX_BODY = 1024 * 1024;

/** Headers on every reply: nothing cached, nothing framed, no referrer (the URL may hold a token). */
export const SECURITY_HEADERS: Record<string, string> = {
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Resource-Policy": "same-origin",
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendText(
  res: ServerResponse,
  status: number,
  text: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

/** HTTP status for an error code: conflicts 409, bad input 400, missing things 404. */
export function statusFor(code: string): number {
  if (code === "WEB_CONFLICT") return 409;
  if (code === "INVALID_PARAMS" || code === "INVALID_ARGUMENT" || code === "EXECUTORS_INVALID")
    return 400;
  if (code.endsWith("NOT_FOUND") || code === "UNKNOWN_METHOD") return 404;
  return 500;
}

export function sendError(res: ServerResponse, err: unknown): void {
  const e = toSidecarError(err);
  sendJson(res, statusFor(e.code), { error: e.toPayload() });
}

/** Read a JSON object body (at most 1 MiB). */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers["content-type"] ?? "";
  if (!type.startsWith("application/json"))
    throw new SidecarError(
      "INVALID_PARAMS",
      `Expected a JSON body (Content-Type application/json), got \`${type}\``,
    );
  const text = await new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      // past the limit keep reading (and dropping), so that the client gets the reply, not a reset
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on("end", () =>
      size > MAX_BODY
        ? reject(new SidecarError("INVALID_PARAMS", "The request body is larger than 1 MiB"))
        : resolve(Buffer.concat(chunks).toString("utf8")),
    );
    req.on("error", reject);
  });
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SidecarError(
      "INVALID_PARAMS",
      `The request body is not JSON: ${(err as Error).message}`,
    );
  }
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw new SidecarError("INVALID_PARAMS", "Expected the request body to be a JSON object");
  return value as Record<string, unknown>;
}
