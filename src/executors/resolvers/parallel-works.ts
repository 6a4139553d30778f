/**
 * Parallel Works: `GET <platform>/api/resources?key=<PW_API_KEY>` lists the user's pools as
 * `[{name, status, state: {masterNode}}]` (the shape the original helper scripts read). A pool
 * is matched by name with underscores removed on both sides, and is usable once its status is
 * `on` and it has a master node address.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SidecarError } from "../../errors.js";
import type { PoolResolver, ResolvedPool, ResolveOptions } from "./types.js";

export interface ParallelWorksOptions {
  /** https://host or http://127.0.0.1:port; `/api/resources` is appended */
  baseUrl: string;
  apiKey: string;
  /** HOST_USER to report (PW_USER) */
  user?: string;
  /** between polls @default 10000 */
  pollMs?: number;
  /** give up after @default 900000 (15 min) */
  timeoutMs?: number;
  /** polls in a row that may not list the pool at all before failing @default 4 */
  notFoundPolls?: number;
}

interface PwPool {
  name?: unknown;
  status?: unknown;
  state?: { masterNode?: unknown } | null;
}

const squash = (s: string): string => s.replace(/_/g, "");

export class ParallelWorksResolver implements PoolResolver {
  readonly name = "parallelworks";

  constructor(private readonly opts: ParallelWorksOptions) {}

  /** From PW_API_KEY, PARSL_SIDECAR_PW_URL (or https://$PARSL_CLIENT_HOST, https://$PW_PLATFORM_HOST) and PW_USER. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): ParallelWorksResolver {
    const apiKey = env.PW_API_KEY;
    if (!apiKey)
      throw new SidecarError(
        "RESOLVER_FAILED",
        "RESOLVER parallelworks needs PW_API_KEY in the sidecar's environment (your Parallel Works API key)",
      );
    const host = env.PARSL_CLIENT_HOST ?? env.PW_PLATFORM_HOST;
    const baseUrl = env.PARSL_SIDECAR_PW_URL ?? (host ? `https://${host}` : undefined);
    if (!baseUrl)
      throw new SidecarError(
        "RESOLVER_FAILED",
        "RESOLVER parallelworks needs the platform's address: set PARSL_CLIENT_HOST (or PW_PLATFORM_HOST, e.g. cloud.parallel.works) or PARSL_SIDECAR_PW_URL",
      );
    const o: ParallelWorksOptions = { baseUrl, apiKey };
    if (env.PW_USER) o.user = env.PW_USER;
    if (env.PARSL_SIDECAR_PW_POLL_MS) o.pollMs = Number(env.PARSL_SIDECAR_PW_POLL_MS);
    return new ParallelWorksResolver(o);
  }

  private async list(signal?: AbortSignal): Promise<PwPool[]> {
    const url = `${this.opts.baseUrl.replace(/\/+$/, "")}/api/resources?key=${encodeURIComponent(this.opts.apiKey)}`;
    const shown = `${this.opts.baseUrl.replace(/\/+$/, "")}/api/resources`;
    let res: Response;
    try {
      res = await fetch(url, {
        signal: signal ?? AbortSignal.timeout(30_000),
        headers: { accept: "application/json" },
      });
    } catch (err) {
      throw new SidecarError(
        "RESOLVER_FAILED",
        `Cannot reach the Parallel Works API at ${shown}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (res.status === 401 || res.status === 403)
      throw new SidecarError(
        "RESOLVER_FAILED",
        `The Parallel Works API at ${shown} refused PW_API_KEY (HTTP ${res.status}); check the key`,
      );
    if (!res.ok)
      throw new SidecarError(
        "RESOLVER_FAILED",
        `The Parallel Works API at ${shown} answered HTTP ${res.status}`,
      );
    const body = (await res.json().catch(() => undefined)) as unknown;
    if (!Array.isArray(body))
      throw new SidecarError(
        "RESOLVER_FAILED",
        `The Parallel Works API at ${shown} did not answer with a list of resources`,
      );
    return body as PwPool[];
  }

  async resolve(pool: string, ro: ResolveOptions = {}): Promise<ResolvedPool> {
    const pollMs = this.opts.pollMs ?? 10_000;
    const deadline = Date.now() + (this.opts.timeoutMs ?? 900_000);
    const maxMissing = this.opts.notFoundPolls ?? 4;
    let missing = 0;
    let last = "";
    for (;;) {
      ro.signal?.throwIfAborted();
      const found = (await this.list(ro.signal)).find(
        (p) => typeof p.name === "string" && squash(p.name) === squash(pool),
      );
      if (!found) {
        missing++;
        if (missing >= maxMissing)
          throw new SidecarError(
            "RESOLVER_FAILED",
            `Parallel Works has no pool named \`${pool}\` (compared without underscores); check POOL`,
            { data: { pool } },
          );
        last = `pool ${pool} not listed yet`;
      } else {
        missing = 0;
        const ip = found.state?.masterNode;
        if (found.status === "on" && typeof ip === "string" && ip !== "") {
          const out: ResolvedPool = { hostIp: ip };
          if (this.opts.user) out.hostUser = this.opts.user;
          return out;
        }
        last =
          found.status === "on"
            ? `pool ${pool} is on, waiting for its master node address`
            : `pool ${pool} is ${String(found.status)}, waiting for it to be on`;
      }
      ro.onProgress?.(last);
      if (Date.now() + pollMs > deadline)
        throw new SidecarError(
          "RESOLVER_FAILED",
          `Gave up waiting for Parallel Works pool \`${pool}\`: ${last}`,
          { data: { pool } },
        );
      await sleep(pollMs, undefined, ro.signal ? { signal: ro.signal } : undefined);
    }
  }
}
