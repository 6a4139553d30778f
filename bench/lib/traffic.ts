/**
 * Traffic helper for bench/tunnel.ts, run as its own process so that the tunnel under test does
 * not share a thread with the load: a sink that discards and counts, and sources that send.
 * stdin/stdout: one JSON object per line. Prints {"sink": port}; then for each
 * {"host", "port", "streams", "bytes"} (bytes per stream) prints {"ms", "bytes"} when the sink
 * has received everything, or {"error"}.
 */
import { connect, createServer } from "node:net";
import { createInterface } from "node:readline";

let received = 0;
let want = Number.POSITIVE_INFINITY;
let onDone: (() => void) | undefined;
const sink = createServer((s) => {
  s.on("data", (b: Buffer) => {
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

async function run(job: { host: string; port: number; streams: number; bytes: number }): Promise<void> {
  received = 0;
  want = job.streams * job.bytes;
  const done = new Promise<void>((r) => (onDone = r));
  const t0 = process.hrtime.bigint();
  const sources = Array.from({ length: job.streams }, () => source(job.host, job.port, job.bytes));
  const failed = Promise.all(sources).then(() => new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`sources finished but the sink got ${received}/${want} bytes`)), 30000)));
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

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => void run(JSON.parse(line)));
rl.on("close", () => process.exit(0));
