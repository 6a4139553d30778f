/**
 * `npm run bench -- soak [--quick] [--transport ssh2|openssh|auto] [--tasks N] [--chaos-events K]
 * [--no-calm] [--keep] [--period S] [--seed N]`: the chaos soak (issue 22, docs/benchmarks.md "soak").
 * Three pools (two with workers on their head nodes, one through Slurm), S3 and GCS on loopback
 * (bench/soak/bed.ts); per transport the workflow bench/soak/workflow.py runs under
 * `parsl-sidecar run --executors` once calm and once with chaos (bench/soak/chaos.ts), the
 * sidecar's RSS and fds sampled from /proc, and what is left after each run's teardown counted
 * (bench/soak/leftovers.ts).
 * Last line: {"bench":"soak","tasks_submitted",...,"leftovers","chaos_events","goal","met"}
 * (with two transports the figures are the worse of the two, each transport's under `runs`).
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { nodeFlags } from "../src/cli/node-flags.js";
import { stopAll } from "../test/testbed/registry.js";
import { runBench } from "./lib/run.js";
import { type Bed, soakDir, startBed, venvBin } from "./soak/bed.js";
import { Chaos, type ChaosEvent, type Progress } from "./soak/chaos.js";
import { countLeftovers, type Leftovers } from "./soak/leftovers.js";
import { fdKinds, fdsNew, fdTargets, sample } from "./soak/sample.js";

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean" },
    transport: { type: "string" },
    tasks: { type: "string" },
    "chaos-events": { type: "string" },
    "no-calm": { type: "boolean" },
    // keep the run's directory (runs' logs, the pools' scratch) for a look after a failure
    keep: { type: "boolean" },
    period: { type: "string" },
    seed: { type: "string" },
    json: { type: "boolean" },
  },
});
const quick = args.quick ?? false;
const tasks = Number(args.tasks ?? (quick ? 1000 : 10000));
const chaosLimit = args["chaos-events"] === undefined ? undefined : Number(args["chaos-events"]);
const period = Number(args.period ?? (quick ? 10 : 20));
const seed = Number(args.seed ?? 22);
const transports =
  args.transport === undefined ? ["ssh2", "openssh"] : args.transport.split(",").filter(Boolean);
for (const t of transports) {
  if (!["ssh2", "openssh", "auto"].includes(t))
    throw new Error(`--transport takes ssh2, openssh or auto, not ${t}`);
}
if (!Number.isInteger(tasks) || tasks < 10)
  throw new Error(`--tasks takes 10 or more, not ${args.tasks}`);

const repo = resolve(import.meta.dirname, "..");
const cli = join(repo, "dist", "bin", "parsl-sidecar.js");
const log = (msg: string): void => void process.stderr.write(`[bench soak] ${msg}\n`);
const r1 = (x: number): number => Math.round(x * 10) / 10;
const r2 = (x: number): number => Math.round(x * 100) / 100;
if (!existsSync(cli)) throw new Error(`${cli} is missing: npm run build`);

/** the `run` in progress, ended first when the bench is stopped */
let active: ChildProcess | undefined;

interface RunResult {
  name: string;
  job: string;
  exitCode: number | null;
  wall_s: number;
  workflow: Record<string, unknown>;
  rss_start_mb: number;
  rss_after_mb: number;
  rss_after_tasks: number;
  rss_peak_mb: number;
  rss_done_mb: number;
  rss_end_mb: number;
  fds_start: number;
  fds_after: number;
  fds_kinds_after: Record<string, number>;
  fds_end: number;
  fds_kinds_start: Record<string, number>;
  fds_kinds_end: Record<string, number>;
  fds_new: Record<string, number>;
  chaos_events: ChaosEvent[];
  leftovers: Leftovers;
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return undefined;
  }
}

/** One `parsl-sidecar run --executors ... -- python workflow.py`, sampled, with or without chaos. */
async function runOnce(
  bed: Bed,
  tmp: string,
  transport: string,
  chaos: boolean,
): Promise<RunResult> {
  const name = `${transport}-${chaos ? "chaos" : "calm"}`;
  const dir = join(tmp, name);
  mkdirSync(join(dir, "local"), { recursive: true });
  const job = `soak-${name}-${Date.now()}`;
  const progressPath = join(dir, "progress.json");
  const resultPath = join(dir, "result.json");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...bed.env,
    PARSL_SIDECAR_STATE_DIR: join(dir, "state"),
    PARSL_SIDECAR_RUNTIME_DIR: join(dir, "rt"),
    PARSL_SIDECAR_JOB: undefined,
    PARSL_SIDECAR_CONNECTION_FILE: undefined,
    PARSL_SIDECAR_EXECUTORS: undefined,
  };
  if (transport === "auto") delete env.PARSL_SIDECAR_SSH_TRANSPORT;
  else env.PARSL_SIDECAR_SSH_TRANSPORT = transport;
  const wf = [
    join(venvBin, "python"),
    join(soakDir, "workflow.py"),
    "--tasks",
    String(tasks),
    "--run",
    name,
    "--seed",
    String(seed),
    "--local",
    join(dir, "local"),
    "--scratch",
    join(dir, "scratch"),
    "--marks",
    join(dir, "marks"),
    "--progress",
    progressPath,
    "--result",
    resultPath,
    // a task not back 90 s after the last result is lost (a manager killed with its block is
    // declared lost after 30 s without heartbeats, and its tasks retried)
    "--stall",
    "90",
  ];
  const logPath = join(dir, "run.log");
  const out = createWriteStream(logPath);
  const t0 = performance.now();
  const child = spawn(
    process.execPath,
    [...nodeFlags(cli), cli, "run", "--job", job, "--executors", bed.executors, "--", ...wf],
    { env, stdio: ["ignore", "pipe", "pipe"], cwd: dir },
  );
  active = child;
  child.stdout.pipe(out);
  child.stderr.pipe(out);
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  const pid = child.pid!;
  const progress = (): Progress | undefined => readJson<Progress>(progressPath);
  const c = chaos ? new Chaos(bed, { tasks, period, limit: chaosLimit, seed, log }) : undefined;
  c?.start(progress);

  const afterTasks = tasks >= 5000 ? 1000 : Math.max(1, Math.floor(tasks / 5));
  const m = {
    start: -1,
    fdsStart: -1,
    fdsAfter: -1,
    kindsAfter: {} as Record<string, number>,
    targetsAfter: [] as string[],
    after: -1,
    peak: 0,
    done: -1,
    end: -1,
    fdsEnd: -1,
    kindsStart: {} as Record<string, number>,
    kindsEnd: {} as Record<string, number>,
    targetsStart: [] as string[],
    targetsEnd: [] as string[],
  };
  let lastShown = -1;
  const deadline = t0 + (300 + tasks * 0.6) * 1000;
  let code: number | null | undefined;
  let timedOut = false;
  while (code === undefined) {
    const s = sample(pid);
    const p = progress();
    if (s) {
      m.peak = Math.max(m.peak, s.rssMb, s.hwmMb);
      if (p && m.start < 0) {
        m.start = s.rssMb;
        m.fdsStart = s.fds;
        m.kindsStart = fdKinds(pid);
        m.targetsStart = fdTargets(pid);
      }
      // the reference for the end: blocks, tunnels and storage connections all in use by now
      // (at the start no block runs yet and no transfer has opened its connection)
      if (p && m.after < 0 && p.completed + p.failed >= afterTasks) {
        m.after = s.rssMb;
        m.fdsAfter = s.fds;
        m.kindsAfter = fdKinds(pid);
        m.targetsAfter = fdTargets(pid);
      }
      // as the last task came back, V8's heap still holding the run's garbage
      if (p?.phase === "done" && m.done < 0) m.done = s.rssMb;
      if (p?.phase === "settled" && m.end < 0) {
        m.end = s.rssMb;
        m.fdsEnd = s.fds;
        m.kindsEnd = fdKinds(pid);
        m.targetsEnd = fdTargets(pid);
      }
    }
    if (p && p.completed + p.failed - lastShown >= Math.max(100, tasks / 20)) {
      lastShown = p.completed + p.failed;
      log(
        `${name}: ${p.completed} done, ${p.failed} failed of ${tasks} at ${r1(p.t ?? 0)} s; sidecar ${s ? `${r1(s.rssMb)} MB, ${s.fds} fds` : "gone"}`,
      );
    }
    if (performance.now() > deadline && !timedOut) {
      timedOut = true;
      log(`${name}: still running after ${r1((performance.now() - t0) / 1000)} s: SIGTERM`);
      child.kill("SIGTERM");
    }
    code = await Promise.race([exited, sleep(1000).then(() => undefined)]);
  }
  active = undefined;
  const wall = (performance.now() - t0) / 1000;
  await c?.stop();
  out.end();
  const workflow = readJson<Record<string, unknown>>(resultPath) ?? {
    error: "the workflow wrote no result",
  };
  if (code !== 0) log(`${name}: run exited ${code}; log ${logPath}:\n${tail(logPath, 40)}`);

  // which pool each execution of a duplicated task ran on (its network namespace)
  const poolOf = new Map<string, string>();
  for (const p of bed.pools)
    for (const ns of p.namespaces) poolOf.set(`net:[${statSync(`/run/netns/${ns}`).ino}]`, p.label);
  const dups = (workflow.duplicates ?? {}) as Record<string, string[]>;
  let acrossBlocks = 0;
  for (const id of Object.keys(dups)) {
    const where = dups[id]!.map((m) => {
      const [ns = "", block = "?"] = m.split("\n");
      return `${poolOf.get(ns) ?? ns} block ${block}`;
    });
    dups[id] = where;
    if (new Set(where).size > 1) acrossBlocks++;
  }
  // a task whose result died with its block's manager is run again in another block: Parsl's
  // at-least-once retry, told apart from a task delivered twice within one block
  workflow.tasks_duplicated_across_blocks = acrossBlocks;
  const completed = (workflow.executors ?? {}) as Record<string, Record<string, unknown>>;
  delete workflow.executors;
  const ports: number[] = [];
  for (const e of Object.values(completed)) {
    for (const k of ["INTERCHANGE_PORT", "WORKER_PORT"])
      if (typeof e[k] === "number") ports.push(e[k]);
  }
  let left: Leftovers | undefined;
  for (let i = 0; i < 20; i++) {
    left = await countLeftovers(bed, { dir, job, sidecarPid: pid, ports, bucket: "soak" });
    if (left.total === 0) break;
    await sleep(500);
  }
  if (left!.total > 0) log(`${name}: left after teardown:\n  ${left!.items.join("\n  ")}`);
  return {
    name,
    job,
    exitCode: code,
    wall_s: r2((workflow.wall_s as number | undefined) ?? wall),
    workflow,
    rss_start_mb: r1(m.start),
    rss_after_mb: r1(m.after),
    rss_after_tasks: afterTasks,
    rss_peak_mb: r1(m.peak),
    rss_done_mb: r1(m.done),
    rss_end_mb: r1(m.end),
    fds_start: m.fdsStart,
    fds_after: m.fdsAfter,
    fds_kinds_after: m.kindsAfter,
    fds_end: m.fdsEnd,
    fds_kinds_start: m.kindsStart,
    fds_kinds_end: m.kindsEnd,
    fds_new: fdsNew(m.targetsAfter, m.targetsEnd),
    chaos_events: c?.events ?? [],
    leftovers: left!,
  };
}

function tail(path: string, n: number): string {
  try {
    return readFileSync(path, "utf8").split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

const num = (x: unknown): number => (typeof x === "number" ? x : 0);

interface MemorySample {
  tasks: number;
  rss_mb: number;
  heap_used_mb: number;
  heap_total_mb: number;
  external_mb: number;
  array_buffers_mb: number;
  fds: number | null;
}

/**
 * The sidecar's own view of its memory (sidecar.status, sampled by the workflow): heap and
 * buffers after the first tasks and at the end, so that RSS growth is told apart from a leak.
 */
function memoryFigures(samples: unknown, afterTasks: number): Record<string, unknown> {
  const xs = Array.isArray(samples) ? (samples as MemorySample[]) : [];
  if (!xs.length) return {};
  const after = xs.find((x) => x.tasks >= afterTasks) ?? xs[0]!;
  const end = xs[xs.length - 1]!;
  const pick = (x: MemorySample) => ({
    tasks: x.tasks,
    rss_mb: x.rss_mb,
    heap_used_mb: x.heap_used_mb,
    heap_total_mb: x.heap_total_mb,
    external_mb: x.external_mb,
    array_buffers_mb: x.array_buffers_mb,
  });
  return { after: pick(after), end: pick(end), samples: xs.length };
}

/** The issue's figures for one transport: chaos run, with the calm run for the ratio. */
function figures(
  transport: string,
  chaos: RunResult,
  calm: RunResult | undefined,
): Record<string, unknown> {
  const w = chaos.workflow;
  const ratio = calm ? r2(chaos.wall_s / calm.wall_s) : null;
  const leftovers = chaos.leftovers.total + (calm?.leftovers.total ?? 0);
  const breakdown: Record<string, number> = {};
  for (const l of [chaos.leftovers, calm?.leftovers]) {
    for (const [k, v] of Object.entries(l?.breakdown ?? {})) breakdown[k] = (breakdown[k] ?? 0) + v;
  }
  const calmBad = calm
    ? num(calm.workflow.tasks_completed) !== tasks ||
      num(calm.workflow.tasks_failed) + num(calm.workflow.tasks_duplicated) > 0 ||
      num(calm.workflow.files_unverified) > 0
    : false;
  const f = {
    transport:
      Array.isArray(w.transports) && w.transports.length
        ? (w.transports as string[]).join("+")
        : transport,
    tasks_submitted: num(w.tasks_submitted),
    tasks_completed: num(w.tasks_completed),
    tasks_failed: num(w.tasks_failed),
    tasks_duplicated: num(w.tasks_duplicated),
    duplicates: w.duplicates ?? {},
    tasks_duplicated_across_blocks: num(w.tasks_duplicated_across_blocks),
    files_verified: num(w.files_verified),
    files_unverified: num(w.files_unverified),
    bytes_moved: num(w.bytes_moved),
    wall_s_chaos: chaos.wall_s,
    wall_s_calm: calm?.wall_s ?? null,
    chaos_ratio: ratio,
    reconnects: num(w.ssh_reconnects),
    tunnel_reconnects: num(w.tunnel_reconnects),
    resumed_connections: num(w.resumed_connections),
    cut_in_flight: num(w.cut_in_flight),
    rss_start_mb: chaos.rss_start_mb,
    rss_after_1000_mb: chaos.rss_after_mb,
    rss_after_tasks: chaos.rss_after_tasks,
    rss_peak_mb: chaos.rss_peak_mb,
    rss_done_mb: chaos.rss_done_mb,
    rss_end_mb: chaos.rss_end_mb,
    fds_start: chaos.fds_start,
    fds_after_1000: chaos.fds_after,
    fds_kinds_after_1000: chaos.fds_kinds_after,
    fds_end: chaos.fds_end,
    fds_kinds_start: chaos.fds_kinds_start,
    fds_kinds_end: chaos.fds_kinds_end,
    fds_new: chaos.fds_new,
    memory: memoryFigures(w.memory, chaos.rss_after_tasks),
    leftovers,
    leftovers_breakdown: breakdown,
    chaos_events: chaos.chaos_events,
    calm_ok: !calmBad,
    errors: [
      ...((w.errors as string[] | undefined) ?? []),
      ...((calm?.workflow.errors as string[] | undefined) ?? []),
    ].slice(0, 10),
    exit_codes: { chaos: chaos.exitCode, calm: calm?.exitCode ?? null },
  };
  const unmet: string[] = [];
  if (f.tasks_submitted !== tasks || f.tasks_completed !== tasks) unmet.push("tasks lost");
  if (f.tasks_failed > 0) unmet.push("tasks failed");
  if (f.tasks_duplicated > 0) unmet.push("tasks run twice");
  if (f.files_unverified > 0) unmet.push("files unverified");
  if (leftovers > 0) unmet.push("leftovers");
  if (calmBad) unmet.push("calm run not clean");
  if (ratio !== null && ratio > 1.5) unmet.push("chaos_ratio > 1.5");
  if (
    f.rss_after_1000_mb > 0 &&
    Math.abs(f.rss_end_mb - f.rss_after_1000_mb) > 0.2 * f.rss_after_1000_mb
  )
    unmet.push("rss_end not within 20% of rss_after_1000");
  // against the same reference as RSS: at the workflow's start no block runs and no storage
  // connection is open yet, so "back to start" would count what a running workflow rightly holds;
  // fewer at the end is back, more is a leak (fds_new names what grew)
  if (f.fds_end > f.fds_after_1000 || f.fds_end < 0) unmet.push("fds_end > fds_after_1000");
  return { ...f, met: unmet.length === 0, unmet };
}

async function main(): Promise<Record<string, unknown>> {
  const tmp = mkdtempSync("/dev/shm/psc-soak-");
  log(
    `${tasks} tasks, transports ${transports.join(", ")}, chaos ${chaosLimit ?? "full"}; dir ${tmp}`,
  );
  const bed = await startBed(tmp, log);
  const runs: Record<string, Record<string, unknown>> = {};
  try {
    for (const t of transports) {
      const calm = args["no-calm"] ? undefined : await runOnce(bed, tmp, t, false);
      if (calm)
        log(
          `${calm.name}: ${JSON.stringify({ ...calm.workflow, leftovers: calm.leftovers.total })}`,
        );
      const chaos = await runOnce(bed, tmp, t, true);
      runs[t] = figures(t, chaos, calm);
      log(`${t}: ${JSON.stringify(runs[t])}`);
    }
  } finally {
    await bed.stop();
    await stopAll();
    if (args.keep) log(`kept ${tmp}`);
    else rmSync(tmp, { recursive: true, force: true });
  }
  const all = Object.values(runs);
  const worst = (k: string, pick: (xs: number[]) => number): number =>
    pick(all.map((r) => num(r[k])));
  const sum = (k: string): number => worst(k, (xs) => xs.reduce((a, b) => a + b, 0));
  const max = (k: string): number => worst(k, (xs) => Math.max(...xs));
  const one = all.length === 1 ? all[0]! : undefined;
  const result: Record<string, unknown> = {
    bench: "soak",
    quick,
    tasks,
    load_avg_1m: r2(loadavg()[0]!),
    ...(one ?? {
      transport: all.map((r) => r.transport).join(","),
      tasks_submitted: sum("tasks_submitted"),
      tasks_completed: sum("tasks_completed"),
      tasks_failed: sum("tasks_failed"),
      tasks_duplicated: sum("tasks_duplicated"),
      tasks_duplicated_across_blocks: sum("tasks_duplicated_across_blocks"),
      files_verified: sum("files_verified"),
      files_unverified: sum("files_unverified"),
      bytes_moved: sum("bytes_moved"),
      wall_s_chaos: max("wall_s_chaos"),
      wall_s_calm: max("wall_s_calm"),
      chaos_ratio: max("chaos_ratio"),
      reconnects: sum("reconnects"),
      resumed_connections: sum("resumed_connections"),
      rss_start_mb: max("rss_start_mb"),
      rss_after_1000_mb: max("rss_after_1000_mb"),
      rss_peak_mb: max("rss_peak_mb"),
      rss_done_mb: max("rss_done_mb"),
      rss_end_mb: max("rss_end_mb"),
      fds_start: max("fds_start"),
      fds_after_1000: max("fds_after_1000"),
      fds_end: max("fds_end"),
      leftovers: sum("leftovers"),
      chaos_events: all.flatMap((r) => r.chaos_events as ChaosEvent[]),
      met: all.every((r) => r.met),
      unmet: [...new Set(all.flatMap((r) => r.unmet as string[]))],
    }),
    goal: {
      tasks_completed: tasks,
      tasks_failed: 0,
      tasks_duplicated: 0,
      files_unverified: 0,
      leftovers: 0,
      chaos_ratio_max: 1.5,
      rss_end_vs_after_1000_max: 0.2,
      fds_end: "<= fds_after_1000",
    },
    ...(one ? {} : { runs }),
  };
  return result;
}

// a caller's timeout (the CI test's) ends the bench with SIGTERM: stop the bed rather than leave
// namespaces and daemons behind (the run in progress gets the signal too, as one process group)
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    log(`${sig}: stopping the run and the bed`);
    const run = active;
    const ended = run
      ? new Promise((res) => {
          run.once("exit", res);
          run.kill("SIGTERM");
          setTimeout(res, 30_000).unref();
        })
      : Promise.resolve();
    void ended.then(stopAll).finally(() => process.exit(1));
  });
}
runBench(main, log);
