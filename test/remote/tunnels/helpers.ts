// Shared by the direct tests of src/remote/tunnels/: run a program file (python3, sh or bash) on
// this machine, read its lines, and the small TCP ends they talk to.
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { connect, createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { REMOTE, waitUntil } from "../helpers.js";

/** A program of src/remote/tunnels/. */
export function program(name: string): string {
  return join(REMOTE, "tunnels", name);
}

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `cmd args` to its end (killed after `timeoutMs`). */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...opts.env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 20_000);
    p.on("error", reject);
    p.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end();
  });
}

export interface Started {
  proc: ChildProcessWithoutNullStreams;
  lines: string[];
  /** the first stdout line starting with `prefix` */
  line(prefix: string, timeoutMs?: number): Promise<string>;
  exited: Promise<number | string | null>;
}

/** Start a long-running program in a process group of its own (killed by `stopAll`). */
export function start(cmd: string, args: string[], env?: Record<string, string>): Started {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, detached: true });
  started.push(proc);
  const lines: string[] = [];
  createInterface({ input: proc.stdout }).on("line", (l) => lines.push(l));
  proc.stderr.resume();
  const exited = new Promise<number | string | null>((r) =>
    proc.on("exit", (code, signal) => r(code ?? signal)),
  );
  const line = (prefix: string, timeoutMs = 15_000) =>
    waitUntil(() => lines.find((l) => l.startsWith(prefix)), timeoutMs, `a '${prefix}' line`);
  return { proc, lines, line, exited };
}

const started: ChildProcessWithoutNullStreams[] = [];

/** Kill the process group of everything `start` started. */
export function stopAll(): void {
  for (const p of started.splice(0)) {
    try {
      process.kill(-p.pid!, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

/** A TCP server on 127.0.0.1:0 calling `onConn` for each connection; `close` ends them all. */
export async function server(
  onConn: (s: Socket) => void,
): Promise<{ port: number; server: Server; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const srv = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => undefined);
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return {
    port: (srv.address() as { port: number }).port,
    server: srv,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** A port nothing listens on (bound, then closed again). */
export async function freePort(): Promise<number> {
  const s = await server(() => undefined);
  await s.close();
  return s.port;
}

/** A client connection to 127.0.0.1:port, with everything it received so far. */
export async function client(port: number): Promise<{ sock: Socket; got: () => Buffer }> {
  const sock = connect({ host: "127.0.0.1", port });
  const chunks: Buffer[] = [];
  sock.on("data", (b: Buffer) => chunks.push(b));
  sock.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  return { sock, got: () => Buffer.concat(chunks) };
}

/** Wait until `got()` holds `want` (as text), then return it. */
export function receive(got: () => Buffer, want: string, timeoutMs = 10_000): Promise<string> {
  return waitUntil(
    () => (got().toString("latin1") === want ? want : undefined),
    timeoutMs,
    JSON.stringify(want),
  );
}
