/**
 * `npm run bench -- parsl [--quick] [--transport ssh2|openssh]`: Parsl's own parsl-perf
 * (`python -m parsl.benchmark.perf --config FILE --time S --argsize BYTES`) against a plain local
 * HighThroughputExecutor (LocalProvider) and against the same executor on a loopback pool (sshd on
 * 127.0.0.1) through the sidecar (parsl_config(): worker tunnel, SidecarLocalProvider) over each
 * SSH transport, same worker count, at --argsize 0 and 1,000,000. Runs alternate (the order
 * rotates every round) so that all see the same machine load; tasks/s is the last iteration's
 * (the one parsl-perf sized to --time), the median over rounds. A floor runs beside them: the
 * local executor with its workers reaching the interchange through the user's own `ssh -R` to
 * the same sshd (same cipher as the sidecar's master), holding a session open as the sidecar's
 * connections do, which is what any SSH tunnel costs on this machine, so ours / floor says what
 * is left to the sidecar. The same tunnel opened with `-N` runs too (`ssh_N_R`): without a
 * session, sshd never sets TCP_NODELAY on the connection (docs/benchmarks.md, ## parsl).
 * Last line: {"bench":"parsl","argsizes":{"0":{"local_tasks_per_s","ssh_R_tasks_per_s","ssh_N_R_tasks_per_s","transports":{NAME:{"tasks_per_s","ratio","ratio_vs_ssh_R","ratio_paired","ratio_vs_ssh_R_paired"}}},...}}
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import getPort from "get-port";
import { nodeFlags } from "../src/cli/node-flags.js";
import { startSshd } from "../test/testbed/sshd.js";
import { benchTransports, CIPHER, median } from "./lib/transports.js";

const quick = process.argv.includes("--quick");
const transports = benchTransports();
const seconds = quick ? 3 : 10;
const rounds = quick ? 1 : 3;
const argsizes = [0, 1_000_000];
const workers = 4;
const repo = resolve(import.meta.dirname, "..");
const venvBin = join(repo, ".venv", "bin");
const python = join(venvBin, "python");
const log = (msg: string): void => void process.stderr.write(`[bench parsl] ${msg}\n`);
const r2 = (x: number): number => Math.round(x * 100) / 100;

const tmp = mkdtempSync(join(tmpdir(), "psc-bench-parsl-"));
const sshd = await startSshd();
const runtime = mkdtempSync("/tmp/psc-bench-rt-");
const sshConfig = join(tmp, "ssh_config");
// one alias per transport: the first connection to a pool decides its transport
writeFileSync(
  sshConfig,
  transports
    .map(
      (t) =>
        `Host benchpool-${t}\n  HostName ${sshd.host}\n  Port ${sshd.port}\n  User ${sshd.user}\n  IdentityFile ${sshd.keyPath}\n  UserKnownHostsFile ${sshd.knownHostsPath}\n  StrictHostKeyChecking yes\n`,
    )
    .join("\n"),
  { mode: 0o600 },
);
const env = {
  ...process.env,
  PATH: `${venvBin}:${process.env.PATH ?? ""}`,
  PARSL_SIDECAR_SSH_CONFIG: sshConfig,
  PARSL_SIDECAR_CONNECTION_FILE: join(runtime, "sidecar.json"),
};

/** parsl-perf config files: `fresh_config()` (the module is executed twice; it builds once). */
function writeConfigs(floor: {
  workerPort: number;
  tunnelPort: number;
  tunnelPortN: number;
}): Record<string, string> {
  const files: Record<string, string> = {};
  const runDir = (name: string): string => JSON.stringify(join(tmp, `runinfo-${name}`));
  files.local = join(tmp, "local.py");
  writeFileSync(
    files.local,
    `from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider


def fresh_config():
    return Config(
        executors=[HighThroughputExecutor(label="local", address="127.0.0.1",
                                          max_workers_per_node=${workers}, provider=LocalProvider())],
        run_dir=${runDir("local")},
        usage_tracking=0,
    )
`,
  );
  // the floors: the interchange listens on workerPort; its workers dial a port that sshd
  // forwards to it through the user's own `ssh -R` (with a session) or `ssh -N -R`
  for (const [name, tunnelPort] of [
    ["ssh_R", floor.tunnelPort],
    ["ssh_N_R", floor.tunnelPortN],
  ] as const) {
    files[name] = join(tmp, `${name.toLowerCase()}.py`);
    writeFileSync(
      files[name],
      `from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.executors.high_throughput.executor import DEFAULT_LAUNCH_CMD
from parsl.providers import LocalProvider

if "--port={worker_port} " not in DEFAULT_LAUNCH_CMD or "-a {addresses} " not in DEFAULT_LAUNCH_CMD:
    raise SystemExit("this Parsl's launch command has no --port={worker_port}: no ssh -R floor")


def fresh_config():
    return Config(
        executors=[HighThroughputExecutor(
            label="${name}", address="127.0.0.1", worker_port=${floor.workerPort},
            launch_cmd=DEFAULT_LAUNCH_CMD.replace("--port={worker_port} ", "--port=${tunnelPort} ")
            .replace("-a {addresses} ", "-a 127.0.0.1 "),
            max_workers_per_node=${workers}, provider=LocalProvider())],
        run_dir=${runDir(name)},
        usage_tracking=0,
    )
`,
    );
  }
  for (const t of transports) {
    const executors = join(tmp, `executors-${t}.json`);
    writeFileSync(
      executors,
      JSON.stringify({
        pool: {
          SSH_TARGET: `benchpool-${t}`,
          SSH_TRANSPORT: t,
          PYTHON: python,
          RUN_DIR: join(tmp, `pool-${t}`),
          MAX_WORKERS_PER_NODE: workers,
        },
      }),
    );
    files[t] = join(tmp, `pool-${t}.py`);
    writeFileSync(
      files[t],
      `from parsl_sidecar import parsl_config


def fresh_config():
    return parsl_config(${JSON.stringify(executors)},
                        executor_options={"pool": {"max_workers_per_node": ${workers}}},
                        run_dir=${runDir(t)}, usage_tracking=0)
`,
    );
  }
  return files;
}

/** One parsl-perf run; tasks/s of its last iteration. */
async function perf(config: string, argsize: number): Promise<number> {
  const r = await execa(
    python,
    [
      "-m",
      "parsl.benchmark.perf",
      "--config",
      config,
      "--time",
      String(seconds),
      "--argsize",
      String(argsize),
    ],
    { env, reject: false, timeout: 600_000, cwd: tmp },
  );
  const rates = [...r.stdout.matchAll(/^Tasks per second: ([\d.]+)/gm)].map((m) => Number(m[1]));
  if (r.exitCode !== 0 || rates.length === 0)
    throw new Error(
      `parsl-perf --config ${config} failed (${String(r.exitCode)}):\n${r.stdout.slice(-1500)}\n${r.stderr.slice(-3000)}`,
    );
  return rates.at(-1)!;
}

let floorTunnels: ChildProcess[] = [];
const bin = join(repo, "dist", "bin", "parsl-sidecar.js");
const sidecar = spawn(
  "node",
  [
    ...(process.env.PSC_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.PSC_PROF}`] : []),
    ...nodeFlags(bin),
    bin,
    "serve",
    "--runtime-dir",
    runtime,
    "--log-level",
    "warn",
  ],
  { env, stdio: ["ignore", "ignore", "inherit"] },
);
try {
  for (let i = 0; i < 300 && !existsSync(join(runtime, "sidecar.json")); i++) await sleep(100);
  if (!existsSync(join(runtime, "sidecar.json"))) throw new Error("the sidecar did not start");
  for (const t of transports) mkdirSync(join(tmp, `pool-${t}`));
  const workerPort = await getPort({ host: "127.0.0.1" });
  const tunnelPort = await getPort({ host: "127.0.0.1" });
  const tunnelPortN = await getPort({ host: "127.0.0.1" });
  const floorArgs = (port: number): string[] => [
    ...sshd.sshArgs().slice(0, -1),
    "-T",
    "-o",
    "ExitOnForwardFailure=yes",
    "-o",
    `Ciphers=${CIPHER}`,
    "-R",
    `127.0.0.1:${port}:127.0.0.1:${workerPort}`,
  ];
  // the floor holds a session (`cat` ends when this ssh goes and its stdin closes), as the
  // sidecar's connections always do; the second is the same tunnel with -N, no session
  floorTunnels = [
    spawn("ssh", [...floorArgs(tunnelPort), `${sshd.user}@${sshd.host}`, "cat >/dev/null"], {
      stdio: ["pipe", "ignore", "inherit"],
    }),
    spawn("ssh", [...floorArgs(tunnelPortN), "-N", `${sshd.user}@${sshd.host}`], {
      stdio: ["ignore", "ignore", "inherit"],
    }),
  ];
  const files = writeConfigs({ workerPort, tunnelPort, tunnelPortN });
  const names = ["local", "ssh_R", "ssh_N_R", ...transports];
  log(
    `parsl-perf --time ${seconds}, --argsize ${argsizes.join(" and ")}, ${rounds} round(s): local HTEX, the same with its workers through \`ssh -R\` holding a session (the floor) and through \`ssh -N -R\`, and the same on a loopback pool over ${transports.join(", ")}; ${workers} workers each`,
  );
  const rates: Record<string, number[]> = {};
  const load0 = loadavg()[0]!;
  for (let round = 0; round < rounds; round++)
    for (const argsize of argsizes) {
      const order = [...names];
      for (let i = 0; i < round; i++) order.push(order.shift()!);
      for (const n of order) {
        const rate = await perf(files[n]!, argsize);
        (rates[`${n}.${argsize}`] ??= []).push(rate);
        log(`round ${round + 1} argsize ${argsize} ${n}: ${rate.toFixed(1)} tasks/s`);
      }
    }
  // the machine's speed drifts by up to 1.5x over minutes: each round's pair, measured
  // back to back, compares better than medians taken apart
  const paired = (ours: string, base: string): number =>
    median(rates[ours]!.map((x, i) => x / rates[base]![i]!));
  const out = {
    bench: "parsl",
    tool: "parsl-perf (python -m parsl.benchmark.perf)",
    time_s: seconds,
    rounds,
    workers,
    // per argsize: the local executor's tasks/s, and per transport ours and ours / local
    argsizes: Object.fromEntries(
      argsizes.map((a) => {
        const local = median(rates[`local.${a}`]!);
        const floor = median(rates[`ssh_R.${a}`]!);
        const floorN = median(rates[`ssh_N_R.${a}`]!);
        return [
          String(a),
          {
            local_tasks_per_s: r2(local),
            ssh_R_tasks_per_s: r2(floor),
            ssh_R_ratio: r2(floor / local),
            ssh_N_R_tasks_per_s: r2(floorN),
            ssh_N_R_ratio: r2(floorN / local),
            transports: Object.fromEntries(
              transports.map((t) => {
                const ours = median(rates[`${t}.${a}`]!);
                return [
                  t,
                  {
                    tasks_per_s: r2(ours),
                    ratio: r2(ours / local),
                    ratio_vs_ssh_R: r2(ours / floor),
                    ratio_paired: r2(paired(`${t}.${a}`, `local.${a}`)),
                    ratio_vs_ssh_R_paired: r2(paired(`${t}.${a}`, `ssh_R.${a}`)),
                  },
                ];
              }),
            ),
          },
        ];
      }),
    ),
    goal: { ratio: 0.9 },
    met: Object.fromEntries(
      transports.map((t) => [
        t,
        argsizes.every((a) => median(rates[`${t}.${a}`]!) >= 0.9 * median(rates[`local.${a}`]!)),
      ]),
    ),
    runs: Object.fromEntries(Object.entries(rates).map(([k, v]) => [k, v.map(r2)])),
    quick,
    machine: { cpus: cpus().length, loadavg_1m: r2((load0 + loadavg()[0]!) / 2) },
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
} finally {
  for (const p of floorTunnels) p.kill("SIGTERM");
  sidecar.kill("SIGTERM");
  await new Promise((r) => sidecar.once("exit", r));
  await sshd.stop();
  rmSync(tmp, { recursive: true, force: true });
  rmSync(runtime, { recursive: true, force: true });
}
