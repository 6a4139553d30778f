/**
 * Who may use the page: a one-time token in the URL is exchanged for an HttpOnly, SameSite=Strict
 * session cookie; the Host header must name this loopback port (DNS-rebinding defence) and
 * state-changing requests must come from the page's own origin.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";

/** How long an unused URL token stays valid. */
const TOKEN_TTL_MS = 12 * 60 * 60 * 1000;

export type Verdict = { ok: true; setCookie?: string } | { ok: false; reason: string };

export class WebAuth {
  private readonly tokens = new Map<string, number>();
  private readonly sessions = new Set<string>();

  constructor(readonly port: number) {}

  /** Cookies are not port-specific, so the name carries the port: two sidecars do not clash. */
  get cookieName(): string {
    return `parsl_sidecar_${this.port}`;
  }

  /** A fresh one-time token for a URL; it is consumed by the first request that presents it. */
  issueToken(): string {
    const now = Date.now();
    for (const [t, exp] of this.tokens) if (exp < now) this.tokens.delete(t);
    const token = randomBytes(24).toString("base64url");
    this.tokens.set(token, now + TOKEN_TTL_MS);
    return token;
  }

  hostOk(req: IncomingMessage): boolean {
    const host = req.headers.host;
    return host === `127.0.0.1:${this.port}` || host === `localhost:${this.port}`;
  }

  originOk(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    return origin === `http://127.0.0.1:${this.port}` || origin === `http://localhost:${this.port}`;
  }

  /** Decide whether a request may proceed; a valid URL token yields a Set-Cookie for the session. */
  check(req: IncomingMessage, url: URL): Verdict {
    if (!this.hostOk(req))
      return {
        ok: false,
        reason: `the Host header \`${req.headers.host ?? ""}\` is not 127.0.0.1:${this.port} or localhost:${this.port}`,
      };
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD" && !this.originOk(req)) {
      return {
        ok: false,
        reason: `a ${method} request must come from the page itself (Origin \`${req.headers.origin ?? "none"}\`)`,
      };
    }
    const session = readCookie(req.headers.cookie, this.cookieName);
    if (session !== undefined && this.sessions.has(session)) return { ok: true };
    const token = url.searchParams.get("token");
    if (token !== null) {
      const exp = this.tokens.get(token);
      if (exp !== undefined && exp >= Date.now()) {
        this.tokens.delete(token);
        const id = randomBytes(24).toString("base64url");
        this.sessions.add(id);
        return {
          ok: true,
          setCookie: `${this.cookieName}=${id}; HttpOnly; SameSite=Strict; Path=/`,
        };
      }
      return {
        ok: false,
        reason:
          "this link's token was already used or has expired; run `parsl-sidecar ui` for a new link",
      };
    }
    return {
      ok: false,
      reason: "no token: open the link printed by `parsl-sidecar ui` (it carries a one-time token)",
    };
  }
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
