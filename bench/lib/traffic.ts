/**
 * Traffic helper for bench/tunnel.ts, run as its own process so that the tunnel under test does
 * not share a thread with the load: a sink that discards and counts, and sources that send.
 * stdin/stdout: one JSON object per line. Prints {"sink": port}; then for each
 * {"host", "port", "streams", "bytes"} (bytes per stream) prints {"ms", "bytes"} when the sink
 * has received everything, or {"error"}; for each {"host", "port", "pings", "size"} prints
 * {"p50_us", "p99_us"}: round trips of `size`-byte messages, one at a time, on one connection (a
 * connection whose first byte is PING_MARK is echoed by the sink, not counted).
 */
import { connect, createServer } from "node:net";
import { createInterface } from "node:readline";

let received = 0;
let want = Number.POSITIVE_INFINITY;
let onDone: (() => void) | undefined;
/** First byte of a latency probe's connection (the throughput sources send 0x5a). */
const PING_MARK = 0x50;
const sink = createServer((s) => {
  s.setNoDelay(true);
  let echo: boolean | undefined;
  s.on("data", (b: Buffer) => {
    echo ??= b[0] === PING_MARK;
    if (echo) {
      s.write(b);
      return;
    }
    received += b.length;
    if (received >= want && onDone) {
      const d = onDone;
      onDone = undefined;
      d();
    }
  });
  s.on("error", () => s.destroy());
});
sink.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${JSON.stringify({ sink: (sink.address() as { port: number }).port })}\n`);
});

const CHUNK = Buffer.alloc(1 << 20, 0x5a);

function source(host: string, port: number, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return;
      }
      s.end();
    };
    s.on("connect", pump);
    s.on("drain", pump);
    s.on("error", reject);
    s.on("close", () => resolve());
  });
}

async function run(job: {
  host: string;
  port: number;
  streams: number;
  bytes: number;
}): Promise<void> {
  received = 0;
  want = job.streams * job.bytes;
  const done = new Promise<void>((r) => (onDone = r));
  const t0 = process.hrtime.bigint();
  const sources = Array.from({ length: job.streams }, () => source(job.host, job.port, job.bytes));
  const failed = Promise.all(sources).then(
    () =>
      new Promise<never>((_, rej) =>
        setTimeout(
          () => rej(new Error(`sources finished but the sink got ${received}/${want} bytes`)),
          30000,
        ),
      ),
  );
  try {
    await Promise.race([done, failed]);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    process.stdout.write(`${JSON.stringify({ ms, bytes: want })}\n`);
  } catch (err) {
    onDone = undefined;
    process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
  }
  await Promise.allSettled(sources);
}

/** Round trips of `size`-byte messages through host:port to the sink's echo; p50 and p99 in µs. */
async function pings(job: {
  host: string;
  port: number;
  pings: number;
  size: number;
}): Promise<void> {
  const s = connect({ host: job.host, port: job.port });
  s.setNoDelay(true);
  const msg = Buffer.alloc(job.size, 0x61);
  msg[0] = PING_MARK;
  try {
    await new Promise<void>((res, rej) => s.once("connect", res).once("error", rej));
    const times: number[] = [];
    let got = 0;
    let wake: (() => void) | undefined;
    s.on("data", (b: Buffer) => {
      got += b.length;
      if (got >= job.size && wake) wake();
    });
    for (let i = 0; i < job.pings; i++) {
      got = 0;
      const back = new Promise<void>((r) => (wake = r));
      const t0 = process.hrtime.bigint();
      s.write(msg);
      await back;
      times.push(Number(process.hrtime.bigint() - t0) / 1e3);
    }
    times.sort((a, b) => a - b);
    const at = (q: number): number =>
      times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
    process.stdout.write(`${JSON.stringify({ p50_us: at(0.5), p99_us: at(0.99) })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
  } finally {
    s.destroy();
  }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const job = JSON.parse(line) as {
    host: string;
    port: number;
    streams?: number;
    bytes?: number;
    pings?: number;
    size?: number;
  };
  if (job.pings !== undefined)
    void pings({ host: job.host, port: job.port, pings: job.pings, size: job.size ?? 64 });
  else
    void run({ host: job.host, port: job.port, streams: job.streams ?? 1, bytes: job.bytes ?? 0 });
});
rl.on("close", () => process.exit(0));
