/**
 * Benchmark `rpc`: the Python client against a real sidecar over ipc (p50/p99 of one call at a
 * time, calls/s with 64 in flight) and, in the same run, the floor: a raw pyzmq echo between two
 * Python processes, plus bare echoes of the protocol's frames (the sidecar's own ROUTER, pyzmq,
 * zeromq.js) as references.
 * Usage: npm run bench -- rpc [--quick]. The last line is one JSON object.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { execa } from "execa";
import { nodeFlags } from "../src/cli/node-flags.js";
import { pidAlive, readConnectionFile } from "../src/rpc/connection-file.js";

const ROOT = resolve(import.meta.dirname, "..");
const quick = process.argv.includes("--quick");
const GOAL = { p50_ratio_max: 1.5, calls_per_s_min: 20_000 };

async function startSidecar(dir: string): Promise<{ pid: number; file: string }> {
  const bin = join(ROOT, "dist/bin/parsl-sidecar.js");
  const child = spawn(
    process.execPath,
    [...nodeFlags(bin), bin, "serve", "--runtime-dir", dir, "--log-level", "warn"],
    { detached: true, stdio: ["ignore", "ignore", "inherit"] },
  );
  child.unref();
  const file = join(dir, "sidecar.json");
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      if (readConnectionFile(file).pid === child.pid) return { pid: child.pid, file };
    } catch {
      /* not yet */
    }
  }
  throw new Error("the sidecar did not start within 30 s");
}

const dir = mkdtempSync(join(tmpdir(), "psc-bench-"));
const sidecar = await startSidecar(dir);
try {
  const py = await execa(
    join(ROOT, ".venv/bin/python"),
    [
      join(ROOT, "bench/rpc_client.py"),
      "--connection",
      sidecar.file,
      ...(quick ? ["--quick"] : []),
    ],
    { stderr: "inherit", timeout: 15 * 60_000 },
  );
  const m = JSON.parse(py.stdout.trim().split("\n").at(-1)!) as Record<string, number>;
  const p50Ratio = Math.round((m.p50_us! / m.floor_p50_us!) * 100) / 100;
  const metP50 = p50Ratio <= GOAL.p50_ratio_max;
  // the stack's own floor: the protocol's four unsigned frames echoed by the sidecar's ROUTER
  const stackRatio = Math.round((m.p50_us! / m.echo4_stack_p50_us!) * 100) / 100;
  const stackFloorRatio = Math.round((m.echo4_stack_p50_us! / m.floor_p50_us!) * 100) / 100;
  const metCalls = m.calls_per_s! >= GOAL.calls_per_s_min;
  const met = metP50 && metCalls;
  const machine = `${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, node ${process.version}`;
  process.stdout.write(
    `${JSON.stringify({ bench: "rpc", ...m, p50_ratio: p50Ratio, p50_ratio_to_stack_floor: stackRatio, stack_floor_ratio: stackFloorRatio, goal: GOAL, met, met_p50: metP50, met_calls_per_s: metCalls, transport: "ipc", quick, machine })}\n`,
  );
} finally {
  process.kill(sidecar.pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (pidAlive(sidecar.pid) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  rmSync(dir, { recursive: true, force: true });
}
