// Echo servers and clients for tunnel tests (real sockets on loopback).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";

export interface Echo {
  port: number;
  accepted: number;
  server: Server;
  close(): Promise<void>;
}

/** A TCP echo server on host:0 that counts accepted connections. */
export async function echoServer(host = "127.0.0.1"): Promise<Echo> {
  const sockets = new Set<Socket>();
  const echo: Echo = {
    port: 0,
    accepted: 0,
    server: createServer((s) => {
      echo.accepted++;
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => s.destroy());
      s.pipe(s);
    }),
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        echo.server.close(() => r());
      }),
  };
  await new Promise<void>((r) => echo.server.listen(0, host, () => r()));
  echo.port = (echo.server.address() as { port: number }).port;
  return echo;
}

/** Send `bytes` random-ish bytes to host:port and read them back; resolves with what came back. */
export function roundTrip(
  host: string,
  port: number,
  bytes = 64 * 1024,
  timeoutMs = 15000,
): Promise<{ sent: Buffer; got: Buffer }> {
  const sent = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) sent[i] = (i * 31 + 7) & 0xff;
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const chunks: Buffer[] = [];
    let n = 0;
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`round trip to ${host}:${port} timed out after ${n}/${bytes} bytes`));
    }, timeoutMs);
    s.on("connect", () => s.write(sent));
    s.on("data", (b: Buffer) => {
      chunks.push(b);
      n += b.length;
      if (n >= bytes) {
        clearTimeout(t);
        s.end();
        resolve({ sent, got: Buffer.concat(chunks) });
      }
    });
    s.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on("close", () => {
      clearTimeout(t);
      if (n < bytes)
        reject(new Error(`connection to ${host}:${port} closed after ${n}/${bytes} bytes`));
    });
  });
}

/** Local addresses:ports in LISTEN state (ss -Hltn), e.g. "127.0.0.1:2222". */
export function listeners(): string[] {
  return execFileSync("ss", ["-Hltn"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[3]!)
    .filter(Boolean);
}

export function isListening(port: number): boolean {
  return listeners().some((a) => a.endsWith(`:${port}`));
}

/** Write to host:port (an echo) without end, reading back; resolves with the bytes echoed once the connection breaks. */
export function streamUntilBroken(
  host: string,
  port: number,
): { echoed: () => number; broken: Promise<number> } {
  let n = 0;
  const chunk = Buffer.alloc(256 * 1024, 7);
  const s = connect({ host, port });
  const pump = (): void => {
    while (!s.destroyed && s.write(chunk));
  };
  s.on("connect", pump);
  s.on("drain", pump);
  s.on("data", (b: Buffer) => (n += b.length));
  const broken = new Promise<number>((resolve) => {
    s.on("error", () => s.destroy());
    s.on("close", () => resolve(n));
  });
  return { echoed: () => n, broken };
}

/** Listening addresses owned by these pids (ss -Hltnp), e.g. for "nothing left listening" checks. */
export function listenersOf(pids: number[]): string[] {
  const want = new Set(pids);
  return execFileSync("ss", ["-Hltnp"], { encoding: "utf8" })
    .split("\n")
    .filter((l) => [...l.matchAll(/pid=(\d+)/g)].some((m) => want.has(Number(m[1]))))
    .map((l) => l.trim().split(/\s+/)[3]!)
    .sort();
}

/** A deterministic byte stream: block i is the SHA-256 chain from a seed. */
export function pattern(bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let h = createHash("sha256").update("seed").digest();
  for (let i = 0; i < bytes; i += 32) {
    h.copy(out, i);
    h = createHash("sha256").update(h).digest();
  }
  return out;
}

/** Send `data` through host:port (an echo behind it) in chunks; resolves with what came back once all of it did. */
export function echoAll(
  host: string,
  port: number,
  data: Buffer,
  onProgress?: (echoed: number) => void,
): { done: Promise<Buffer>; socket: Socket } {
  const s = connect({ host, port });
  const chunks: Buffer[] = [];
  let got = 0;
  const done = new Promise<Buffer>((resolve, reject) => {
    s.on("data", (b: Buffer) => {
      chunks.push(b);
      got += b.length;
      onProgress?.(got);
      if (got >= data.length) {
        s.end();
        resolve(Buffer.concat(chunks));
      }
    });
    s.on("error", reject);
    s.on(
      "close",
      () => got < data.length && reject(new Error(`closed after ${got} of ${data.length} bytes`)),
    );
  });
  let off = 0;
  const pump = (): void => {
    while (off < data.length) {
      const part = data.subarray(off, off + 64 * 1024);
      off += part.length;
      if (!s.write(part)) return;
    }
  };
  s.on("connect", pump);
  s.on("drain", pump);
  return { done, socket: s };
}

const listening: Server[] = [];

/** A listener on loopback whose connections go to `onConn`; resolves with its port. */
export async function listen(onConn: (s: Socket) => void): Promise<number> {
  const srv = createServer(onConn);
  listening.push(srv);
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return (srv.address() as { port: number }).port;
}

/** Close every listener listen() opened (an afterEach). */
export function closeListeners(): void {
  for (const s of listening.splice(0)) s.close();
}
