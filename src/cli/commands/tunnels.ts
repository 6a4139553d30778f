/** `parsl-sidecar tunnels list|open|close|check`. */
import type { Command } from "commander";
import { SidecarError } from "../../errors.js";
import { withClient } from "../client.js";
import { fail, formatBytes, printJson, printTable } from "../output.js";

interface Opts {
  connection?: string;
  json?: boolean;
  kind?: string;
  localPort?: string;
  localHost?: string;
  remotePort?: string;
  remoteHost?: string;
  bind?: string;
  durable?: boolean;
  owner?: string;
}

type Rec = Record<string, unknown> & {
  id: string;
  dial_host: string;
  dial_port: number;
  local_port: number;
  remote_port: number;
  bytes_in: number;
  bytes_out: number;
  cut_connections: number;
  cut_in_flight: number;
};

function int(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v))
    throw new SidecarError(
      "INVALID_ARGUMENT",
      `Expected ${name} to be an integer 1-65535, got \`${v}\``,
    );
  return Number(v);
}

function row(r: Rec): Record<string, unknown> {
  // connections dropped SSH connections cut, and how many of them lost data in flight (and,
  // through a durable relay, how many resumed)
  const resumed =
    typeof r.resumed_connections === "number" && r.resumed_connections > 0
      ? `, ${r.resumed_connections} resumed`
      : "";
  const cut =
    (r.cut_in_flight > 0
      ? `${r.cut_connections} (${r.cut_in_flight} lost)`
      : String(r.cut_connections)) + resumed;
  const reach = r.durable ? `${String(r.reach)} (durable)` : r.reach;
  // a direct forward's bytes go from the SSH master to the service: never counted here
  const bytes = (n: number): string => (r.direct === true ? "(direct)" : formatBytes(n));
  return {
    ...r,
    reach,
    dial: `${r.dial_host}:${r.dial_port}`,
    in: bytes(r.bytes_in),
    out: bytes(r.bytes_out),
    conns: r.connections,
    cut,
  };
}

const COLUMNS = [
  "id",
  "kind",
  "target",
  "state",
  "reach",
  "local_port",
  "remote_port",
  "dial",
  "in",
  "out",
  "conns",
  "reconnects",
  "cut",
  "owner",
];

export function registerTunnels(program: Command): void {
  const tunnels = program
    .command("tunnels")
    .description(
      "reverse tunnels (pool → here, for Parsl workers) and local forwards (here → pool)",
    );

  tunnels
    .command("list")
    .description("every tunnel with its state, ports, where workers dial, traffic and owner")
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (opts: Opts) => {
      try {
        const rows = await withClient(opts.connection, (c) =>
          c.call<Rec[]>("tunnels.list", {}, { timeout: 10_000 }),
        );
        if (opts.json) return printJson(rows);
        printTable(rows.map(row), COLUMNS);
      } catch (err) {
        fail(err, opts);
      }
    });

  tunnels
    .command("open")
    .description("open a tunnel to TARGET and print where to dial")
    .argument("<target>", "user@host[:port] or an ssh config alias")
    .option(
      "--kind <kind>",
      "reverse (the pool dials a port here) or local (a port here reaches the pool)",
      "reverse",
    )
    .option(
      "--local-port <port>",
      "reverse: the service here (default: a free port); local: the port to listen on here (default: free)",
    )
    .option("--local-host <host>", "address here", "127.0.0.1")
    .option(
      "--remote-port <port>",
      "reverse: the port workers dial (default: any free); local: the port to reach (required)",
    )
    .option(
      "--remote-host <host>",
      "reverse: the pool's cluster-side address; local: the host to reach from the pool",
    )
    .option("--bind <mode>", "reverse: loopback, cluster or auto", "auto")
    .option(
      "--durable",
      "reverse: connections survive dropped SSH connections (a relay on the pool keeps them and resumes them; needs python3 there)",
    )
    .option(
      "--owner <owner>",
      "who owns it: job:<id>, pid:<n> (closed when that process exits), or a label",
    )
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (target: string, opts: Opts) => {
      try {
        if (opts.kind !== "reverse" && opts.kind !== "local")
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Expected --kind to be reverse or local, got \`${opts.kind}\``,
          );
        if (!["loopback", "cluster", "auto"].includes(opts.bind ?? "auto"))
          throw new SidecarError(
            "INVALID_ARGUMENT",
            `Expected --bind to be loopback, cluster or auto, got \`${opts.bind}\``,
          );
        const params: Record<string, unknown> = {
          target,
          kind: opts.kind,
          local_host: opts.localHost,
        };
        const lp = int(opts.localPort, "--local-port");
        const rp = int(opts.remotePort, "--remote-port");
        if (lp !== undefined) params.local_port = lp;
        if (rp !== undefined) params.remote_port = rp;
        if (opts.remoteHost) params.remote_host = opts.remoteHost;
        if (opts.kind === "reverse") params.bind = opts.bind;
        if (opts.durable) params.durable = true;
        if (opts.owner) params.owner = opts.owner;
        const r = await withClient(opts.connection, (c) =>
          c.call<Rec>("tunnels.open", params, { timeout: 120_000 }),
        );
        if (opts.json) return printJson(r);
        process.stdout.write(
          opts.kind === "reverse"
            ? `${r.id}: workers on ${target} dial ${r.dial_host}:${r.dial_port} (via ${String(r.reach)}${r.durable ? ", durable" : ""}), carried to 127.0.0.1:${r.local_port} here\n`
            : `${r.id}: connect to ${r.dial_host}:${r.dial_port} here to reach ${String(r.remote_host)}:${r.remote_port} from ${target}\n`,
        );
      } catch (err) {
        fail(err, opts);
      }
    });

  tunnels
    .command("close")
    .description("close a tunnel (both ends, and its relay)")
    .argument("<id>", "tunnel id from `tunnels list`")
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: Opts) => {
      try {
        const r = await withClient(opts.connection, (c) =>
          c.call<Rec>("tunnels.close", { id }, { timeout: 30_000 }),
        );
        if (opts.json) return printJson(r);
        process.stdout.write(`closed ${r.id}\n`);
      } catch (err) {
        fail(err, opts);
      }
    });

  tunnels
    .command("check")
    .description('probe a tunnel end to end from the pool (docs/tunnels.md, "End-to-end check")')
    .argument("<id>", "tunnel id")
    .option("--connection <file>", "connection file")
    .option("--json", "machine-readable output")
    .action(async (id: string, opts: Opts) => {
      try {
        const r = await withClient(opts.connection, (c) =>
          c.call<{ ok: boolean; ms?: number; error?: string }>(
            "tunnels.check",
            { id },
            { timeout: 60_000 },
          ),
        );
        if (opts.json) return printJson(r);
        process.stdout.write(r.ok ? `${id}: ok (${r.ms} ms)\n` : `${id}: FAILED: ${r.error}\n`);
        if (!r.ok) process.exitCode = 1;
      } catch (err) {
        fail(err, opts);
      }
    });
}
