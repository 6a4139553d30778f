/** The ssh service: the connections for other modules, and `ssh.exec`, `ssh.check`, `ssh.list` over RPC. */
import { z } from "zod";
import type { DaemonContext, ServiceModule } from "../rpc/service.js";
import { defineMethod } from "../rpc/registry.js";
import type { ExecOptions, ExecResult, HostLease } from "./host.js";
import { isSshLease, SshConnections, type SshConnectionsOptions } from "./connections.js";
import type { TransportPreference } from "./transport-choice.js";
import { PromptBroker } from "./prompts/broker.js";
import { promptMethods } from "./prompts/methods.js";

const targetSchema = z
  .string()
  .min(1)
  .describe("`local`, `user@host[:port]`, `[v6]:port` or a Host alias from ~/.ssh/config");

const execResultSchema = z.object({
  command: z.string(),
  exit_code: z.number().nullable(),
  signal: z.string().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  duration_ms: z.number(),
  timed_out: z.boolean(),
});

const connectionSchema = z.object({
  target: z.string(),
  transport: z.enum(["ssh2", "openssh"]),
  state: z.string(),
  host: z.string(),
  port: z.number(),
  user: z.string(),
  jumps: z.array(z.string()),
  generation: z.number(),
  reconnects: z.number(),
  server_version: z.string().nullable(),
  fingerprint: z.string().nullable(),
  cipher: z.string().nullable(),
  connected_at: z.number().nullable(),
  sessions: z.number(),
  queued_sessions: z.number(),
  last_error: z.string().nullable(),
  leases: z.number(),
  owners: z.array(z.string()),
});

/** ExecResult as it crosses the RPC (snake_case, like the rest of the protocol). */
export function execResultToWire(r: ExecResult): z.input<typeof execResultSchema> {
  return {
    command: r.command,
    exit_code: r.exitCode,
    signal: r.signal,
    stdout: r.stdout,
    stderr: r.stderr,
    duration_ms: r.durationMs,
    timed_out: r.timedOut,
  };
}

/** How long an RPC caller's lease keeps a connection warm after its last call. */
const RPC_IDLE_MS = 60_000;

export interface SshModule extends ServiceModule {
  /** the one SshConnections; other modules borrow hosts from it */
  connections: SshConnections;
}

/** Create the ssh module (and its pool). */
export function sshModule(ctx: DaemonContext, opts: SshConnectionsOptions = {}): SshModule {
  const prompts =
    opts.prompts ??
    new PromptBroker({
      events: ctx.events,
      log: ctx.log,
      ...(ctx.listening ? { listening: ctx.listening } : {}),
    });
  const connections = new SshConnections({
    events: ctx.events,
    log: ctx.log,
    runtimeDir: ctx.runtimeDir,
    ...opts,
    prompts,
  });
  // RPC calls borrow a lease that lingers, so that a burst of ssh.exec reuses one connection.
  const warm = new Map<
    string,
    { lease: Promise<HostLease>; timer: NodeJS.Timeout | undefined; busy: number }
  >();
  const borrow = async <T>(
    target: string,
    fn: (l: HostLease) => Promise<T>,
    opts: { transport?: TransportPreference } = {},
  ): Promise<T> => {
    let w = warm.get(target);
    if (!w) {
      const created: {
        lease: Promise<HostLease>;
        timer: NodeJS.Timeout | undefined;
        busy: number;
      } = { lease: connections.acquire(target, "rpc", opts), timer: undefined, busy: 0 };
      w = created;
      warm.set(target, created);
      created.lease.catch(() => {
        if (warm.get(target) === created) warm.delete(target);
      });
    }
    const entry = w;
    clearTimeout(entry.timer);
    entry.busy++;
    try {
      return await fn(await entry.lease);
    } finally {
      entry.busy--;
      if (entry.busy === 0 && warm.get(target) === entry) {
        entry.timer = setTimeout(() => {
          warm.delete(target);
          void entry.lease.then(
            (l) => l.release(),
            () => undefined,
          );
        }, RPC_IDLE_MS);
        entry.timer.unref();
      }
    }
  };

  return {
    name: "ssh",
    connections,
    methods: [
      defineMethod({
        name: "ssh.exec",
        description:
          "Run a POSIX sh command on a target (in its own process group) and return exit code, signal, stdout, stderr and duration; a timeout kills the remote group. With `stream`, output chunks arrive as progress messages {stream, data}.",
        params: z
          .object({
            target: targetSchema,
            command: z.string().min(1),
            env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).optional(),
            cwd: z.string().min(1).optional(),
            stdin: z.string().optional(),
            timeout_ms: z.number().int().positive().max(86_400_000).optional(),
            stream: z.boolean().default(false),
          })
          .strict(),
        result: execResultSchema,
        handler: async (p, call) =>
          await borrow(p.target, async (lease) => {
            const opts: ExecOptions = {
              env: p.env,
              cwd: p.cwd,
              stdin: p.stdin,
              timeoutMs: p.timeout_ms,
            };
            if (p.stream)
              opts.onOutput = (stream, chunk) =>
                call.progress({ stream, data: chunk.toString("utf8") });
            return execResultToWire(await lease.exec(p.command, opts));
          }),
      }),
      defineMethod({
        name: "ssh.check",
        description:
          "Connect to a target (or reuse its connection) and report the transport and why it was chosen, the ssh version (openssh), the server version, host key fingerprint, cipher and the round-trip time of a trivial command. `transport` applies when this opens the connection.",
        params: z
          .object({
            target: targetSchema,
            transport: z
              .enum(["auto", "openssh", "ssh2"])
              .optional()
              .describe(
                "for a connection this opens (default PARSL_SIDECAR_SSH_TRANSPORT, else auto)",
              ),
          })
          .strict(),
        result: z.object({
          ok: z.boolean(),
          target: z.string(),
          transport: z.enum(["ssh2", "openssh"]).nullable(),
          transport_why: z.string().nullable(),
          ssh_version: z.string().nullable(),
          server_version: z.string().nullable(),
          fingerprint: z.string().nullable(),
          cipher: z.string().nullable(),
          host: z.string().nullable(),
          port: z.number().nullable(),
          user: z.string().nullable(),
          jumps: z.array(z.string()),
          latency_ms: z.number(),
        }),
        handler: async (p) =>
          await borrow(
            p.target,
            async (lease) => {
              const t0 = Date.now();
              const r = await lease.exec("true");
              const latency = Date.now() - t0;
              const info = isSshLease(lease) ? lease.connection.info() : undefined;
              const decision = connections.decision(p.target);
              return {
                ok: r.exitCode === 0,
                target: p.target,
                transport: info?.transport ?? null,
                transport_why: decision?.why ?? null,
                ssh_version: decision?.ssh?.text ?? null,
                server_version: info?.server_version ?? null,
                fingerprint: info?.fingerprint ?? null,
                cipher: info?.cipher ?? null,
                host: info?.host ?? null,
                port: info?.port ?? null,
                user: info?.user ?? null,
                jumps: info?.jumps ?? [],
                latency_ms: latency,
              };
            },
            p.transport ? { transport: p.transport } : {},
          ),
      }),
      defineMethod({
        name: "ssh.list",
        description:
          "The open SSH connections: state, reconnects, server, fingerprint, cipher, sessions and who holds them.",
        params: z.object({}).strict(),
        result: z.array(connectionSchema),
        handler: () => connections.list(),
      }),
      ...promptMethods(prompts),
    ],
    status: () => {
      const list = connections.list();
      return {
        connections: list.length,
        ready: list.filter((c) => c.state === "ready").length,
        reconnects: list.reduce((n, c) => n + c.reconnects, 0),
      };
    },
    close: async () => {
      for (const w of warm.values()) clearTimeout(w.timer);
      warm.clear();
      await connections.close();
    },
  };
}
