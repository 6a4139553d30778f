/** The env service: ensure/describe on any host of a pool, progress as events, counts for status. */
import { resolve } from "node:path";
import { SidecarError } from "../errors.js";
import type { EventBus } from "../events.js";
import type { Host, Hosts } from "../ssh/host.js";
import { LocalHost } from "../ssh/local-host.js";
import { activationFor, workerInit } from "./activation.js";
import { ensureContainer, type ContainerResult } from "./container.js";
import { ensureEnv, isCurrent, probeInputFor, type EnsureResult } from "./ensure.js";
import { specFromParams, type SpecParams } from "./spec-params.js";
import { probe } from "./probe.js";
import { loadSpecFile, specHash } from "./spec-file.js";
import { checkSpec, type EnvSpec } from "./spec.js";
import { callerParsl } from "./caller.js";
import type { EnvProgress } from "./step.js";

export interface EnsureCall {
  onProgress?: (p: EnvProgress) => void;
  signal?: AbortSignal;
  force?: boolean;
  lockTimeoutMs?: number;
}

export interface EnsureOutcome {
  env: EnsureResult | null;
  container: ContainerResult | null;
}

export interface DescribeOutcome {
  target: string;
  backend: string | null;
  name: string | null;
  prefix: string | null;
  /** current: the recorded hash equals the file's; stale: built from another file or unfinished */
  state: "current" | "stale" | "missing" | "not-an-env";
  hash: string | null;
  recorded_hash: string | null;
  ensured_at: string | null;
  python: string | null;
  parsl: string | null;
  tool: string | null;
  interpreter: string | null;
  worker_init: string | null;
  container: { path: string; exists: boolean } | null;
}

/** Hosts that only know `local` (until the daemon hands its SshConnections to the env module). */
export const localOnlyHosts: Hosts = {
  async acquire(target: string) {
    if (target === "local") return new LocalHost();
    throw new SidecarError(
      "SSH_CONFIG",
      `This sidecar cannot open SSH connections; only \`local\` can be used, not \`${target}\``,
      { data: { target } },
    );
  },
};

/**
 * A pool's environment gets this machine's Parsl (the preflight refuses any other): unless the
 * params name a version or `none`, or this machine has no Parsl.
 */
async function pinParsl(spec: EnvSpec | undefined, params: SpecParams): Promise<void> {
  if (!spec || params.parsl !== undefined || params.target === "local") return;
  const mine = await callerParsl();
  if (mine) spec.parsl = mine;
}

export class EnvService {
  private running = 0;
  private readonly done = new Map<
    string,
    { action: string; at: string; python: string | null; parsl: string | null }
  >();

  constructor(
    private readonly hosts: Hosts,
    private readonly events?: EventBus,
  ) {}

  private async withHost<T>(target: string, fn: (h: Host) => Promise<T>): Promise<T> {
    const lease = await this.hosts.acquire(target, "env");
    try {
      return await fn(lease);
    } finally {
      lease.release();
    }
  }

  /** Ensure the environment and/or container described by `params`. */
  async ensure(params: SpecParams, call: EnsureCall = {}): Promise<EnsureOutcome> {
    const { spec, container } = specFromParams(params);
    await pinParsl(spec, params);
    if (container?.file) container.file = resolve(container.file);
    const onProgress = (p: EnvProgress): void => {
      this.events?.emit("env.progress", { ...p });
      call.onProgress?.(p);
    };
    this.running++;
    try {
      return await this.withHost(params.target, async (host) => {
        const hostEnv = params.host_env;
        const env = spec
          ? await ensureEnv(host, spec, {
              onProgress,
              ...(call.signal ? { signal: call.signal } : {}),
              ...(call.force ? { force: true } : {}),
              ...(call.lockTimeoutMs ? { lockTimeoutMs: call.lockTimeoutMs } : {}),
              ...(hostEnv ? { hostEnv } : {}),
            })
          : null;
        const built = container
          ? await ensureContainer(host, container, {
              onProgress,
              ...(call.signal ? { signal: call.signal } : {}),
              ...(hostEnv ? { hostEnv } : {}),
            })
          : null;
        if (env) {
          this.done.set(`${host.target} ${env.prefix}`, {
            action: env.action,
            at: new Date().toISOString(),
            python: env.python,
            parsl: env.parsl,
          });
          this.events?.emit("env.state", {
            target: host.target,
            prefix: env.prefix,
            action: env.action,
            python: env.python,
            parsl: env.parsl,
          });
        }
        return { env, container: built };
      });
    } finally {
      this.running--;
    }
  }

  /** Look without changing anything: where the environment is, whether it is current, its versions. */
  async describe(params: SpecParams): Promise<DescribeOutcome> {
    const { spec, container } = specFromParams(params);
    await pinParsl(spec, params);
    return await this.withHost(params.target, async (host) => {
      const out: DescribeOutcome = {
        target: host.target,
        backend: null,
        name: null,
        prefix: null,
        state: "missing",
        hash: null,
        recorded_hash: null,
        ensured_at: null,
        python: null,
        parsl: null,
        tool: null,
        interpreter: null,
        worker_init: null,
        container: null,
      };
      if (spec) {
        checkSpec(spec);
        const file = await loadSpecFile(spec);
        const hash = specHash(spec, file.sha256);
        const pr = await probe(host, probeInputFor(spec), params.host_env);
        Object.assign(out, {
          backend: spec.backend,
          name: spec.name ?? null,
          prefix: pr.prefix ?? null,
          hash,
          recorded_hash: pr.record?.hash ?? null,
          ensured_at: pr.record?.ensured_at ?? null,
        });
        out.python = pr.versions?.python ?? null;
        out.parsl = pr.versions?.parsl ?? null;
        out.tool =
          spec.backend === "uv" ? (pr.uv ?? null) : (pr.condaDirTool ?? pr.pathTool ?? null);
        const want = spec.backend === "conda" ? "conda" : "venv";
        out.state = isCurrent(pr, spec, hash)
          ? "current"
          : pr.prefixState === want
            ? "stale"
            : pr.prefixState === "other" ||
                (pr.prefixState && pr.prefixState !== "missing" && pr.prefixState !== "empty")
              ? "not-an-env"
              : "missing";
        if (pr.prefix) {
          const act = activationFor({
            backend: spec.backend,
            prefix: pr.prefix,
            name: spec.name ?? null,
            condaExe: out.tool,
            scripts: pr.activateScripts,
          });
          out.interpreter = act.interpreter;
          out.worker_init = workerInit(act);
        }
      }
      if (container) {
        const c = await ensureContainer(
          host,
          { ...container, create: false },
          params.host_env ? { hostEnv: params.host_env } : {},
        );
        out.container = { path: c.path, exists: c.exists };
      }
      return out;
    });
  }

  status(): Record<string, unknown> {
    return {
      ensuring: this.running,
      ensured: [...this.done.entries()].map(([k, v]) => ({ env: k, ...v })),
    };
  }
}
