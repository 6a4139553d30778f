/**
 * Preflight, before any worker starts: the pool answers, its Python minor and Parsl versions
 * equal this machine's (Parsl's interchange refuses other workers, late and obscurely), the
 * remote directories are writable, and the worker tunnel is open and accepts connections.
 */
import { remoteDir } from "../blocks/index.js";
import { SidecarError, toSidecarError, type ErrorCode } from "../errors.js";
import { programText, shCommand } from "../remote/index.js";
import type { HostLease, Hosts } from "../ssh/host.js";
import type { ResolvedExecutor } from "./resolve.js";
import type { WorkerTunnels } from "./tunnel-port.js";
import { parseVersionProbe, pythonMinor, VERSION_PROBE } from "./versions.js";

export interface PreflightCheck {
  name: "reachable" | "versions" | "directories" | "tunnel" | "scheduler";
  ok: boolean;
  message: string;
  code?: ErrorCode;
  data?: Record<string, unknown>;
}

export interface ExecutorPreflight {
  label: string;
  target: string;
  ok: boolean;
  checks: PreflightCheck[];
  /** what the pool reported */
  python: string | null;
  parsl: string | null;
  executable: string | null;
}

export interface LocalVersions {
  python: string;
  parsl: string;
}

/**
 * The command that runs the version probe with the executor's WORKER_INIT and interpreter
 * (src/remote/executors/preflight.sh `python`, with versions.py).
 */
export function probeCommand(r: ResolvedExecutor): string {
  return shCommand("executors/preflight.sh", [
    "python",
    r.workerInit.trim(),
    r.python,
    VERSION_PROBE,
  ]);
}

function versionFix(r: ResolvedExecutor, local: LocalVersions): string {
  return `Fix: point PYTHON (or CONDA_ENV / WORKER_INIT) of \`${r.label}\` at a Python ${pythonMinor(local.python)} environment with \`pip install parsl==${local.parsl}\` (parsl-sidecar env ensure can build it), or run the workflow with the pool's versions.`;
}

async function checkVersions(
  lease: HostLease,
  r: ResolvedExecutor,
  local: LocalVersions,
  out: ExecutorPreflight,
): Promise<PreflightCheck> {
  const res = await lease.exec(probeCommand(r), { timeoutMs: 120_000 });
  const v = parseVersionProbe(res.stdout);
  if (!v) {
    const why = (
      res.stderr.trim().split("\n").slice(-3).join(" ") || `exit ${String(res.exitCode)}`
    ).slice(0, 400);
    return {
      name: "versions",
      ok: false,
      code: "VERSION_SKEW",
      message: `Executor \`${r.label}\`: cannot run \`${r.python}\` on pool \`${r.target}\` (after WORKER_INIT): ${why}. ${versionFix(r, local)}`,
    };
  }
  out.python = v.python;
  out.parsl = v.parsl;
  out.executable = v.executable;
  const data = {
    label: r.label,
    target: r.target,
    pool_python: v.python,
    pool_parsl: v.parsl,
    local_python: local.python,
    local_parsl: local.parsl,
    executable: v.executable,
  };
  if (v.parsl === null) {
    return {
      name: "versions",
      ok: false,
      code: "VERSION_SKEW",
      data,
      message: `Executor \`${r.label}\`: Parsl is not importable by ${v.executable} (Python ${v.python}) on pool \`${r.target}\` (${v.parslError ?? "import failed"}); this machine has Python ${local.python} with Parsl ${local.parsl}. ${versionFix(r, local)}`,
    };
  }
  const pyOk = pythonMinor(v.python) === pythonMinor(local.python);
  const parslOk = v.parsl === local.parsl;
  if (!pyOk || !parslOk) {
    const what = [
      !pyOk ? `Python ${v.python} there vs ${local.python} here` : "",
      !parslOk ? `Parsl ${v.parsl} there vs ${local.parsl} here` : "",
    ]
      .filter(Boolean)
      .join(", ");
    return {
      name: "versions",
      ok: false,
      code: "VERSION_SKEW",
      data,
      message: `Executor \`${r.label}\`: version mismatch with pool \`${r.target}\` (${v.executable}): ${what}. Parsl's interchange refuses workers whose Python minor or Parsl version differ. ${versionFix(r, local)}`,
    };
  }
  return {
    name: "versions",
    ok: true,
    data,
    message: `Python ${v.python} and Parsl ${v.parsl} (${v.executable}) match this machine`,
  };
}

async function checkDirs(lease: HostLease, r: ResolvedExecutor): Promise<PreflightCheck> {
  const dirs = [
    ...new Set([r.runDir, r.workerLogdirRoot, ...(r.provider === "local" ? [] : [r.scriptDir])]),
  ];
  // as words of the pool's shell: a leading ~/ expands there
  const words = dirs.map((d) => ({ shell: remoteDir(d) }));
  const res = await lease.exec(shCommand("executors/preflight.sh", ["dirs", ...words]), {
    timeoutMs: 60_000,
  });
  const bad = res.stdout.split("\n").filter(Boolean);
  if (res.exitCode !== 0 || bad.length > 0) {
    return {
      name: "directories",
      ok: false,
      code: "PROVIDER_FAILED",
      data: { label: r.label, dirs: bad },
      message: `Executor \`${r.label}\`: cannot create or write ${bad.join(", ") || dirs.join(", ")} on pool \`${r.target}\`; set RUN_DIR / WORKER_LOGDIR_ROOT / SSH_CHANNEL_SCRIPT_DIR to directories the SSH user can write`,
    };
  }
  return { name: "directories", ok: true, message: `writable: ${dirs.join(", ")}` };
}

const SCHEDULER_COMMANDS = {
  slurm: ["sbatch", "squeue", "scancel"],
  pbspro: ["qsub", "qstat", "qdel"],
} as const;

/** The scheduler's client commands exist on the head node, and a named Slurm partition exists. */
async function checkScheduler(lease: HostLease, r: ResolvedExecutor): Promise<PreflightCheck> {
  if (r.provider === "local")
    return { name: "scheduler", ok: true, message: "PROVIDER local: no scheduler" };
  const cmds = SCHEDULER_COMMANDS[r.provider];
  const missing = (
    await lease.exec(shCommand("executors/preflight.sh", ["commands", ...cmds]), {
      timeoutMs: 30_000,
    })
  ).stdout
    .split("\n")
    .filter(Boolean);
  if (missing.length > 0) {
    return {
      name: "scheduler",
      ok: false,
      code: "PROVIDER_FAILED",
      message: `Executor \`${r.label}\`: PROVIDER ${r.provider} needs ${missing.join(", ")} on the head node of pool \`${r.target}\`, and the login shell's PATH has none of them`,
    };
  }
  const partition = r.providerOptions.partition;
  if (r.provider === "slurm" && typeof partition === "string") {
    const res = await lease.exec(`sinfo -h -o %R 2>/dev/null`, { timeoutMs: 30_000 });
    const known = res.stdout
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
    if (res.exitCode === 0 && known.length > 0 && !known.includes(partition)) {
      return {
        name: "scheduler",
        ok: false,
        code: "PROVIDER_FAILED",
        message: `Executor \`${r.label}\`: Slurm on pool \`${r.target}\` has no partition \`${partition}\` (sinfo lists ${known.join(", ")}); fix PARTITION`,
      };
    }
  }
  return {
    name: "scheduler",
    ok: true,
    message: `${cmds.join(", ")} found${typeof partition === "string" ? `; partition ${partition} exists` : ""}`,
  };
}

async function checkTunnel(
  lease: HostLease,
  r: ResolvedExecutor,
  tunnels: WorkerTunnels | undefined,
): Promise<PreflightCheck> {
  if (r.isLocal)
    return { name: "tunnel", ok: true, message: "pool is this machine: no tunnel needed" };
  if (!r.tunnelId || r.workerPort === null || r.dialAddress === null) {
    return {
      name: "tunnel",
      ok: false,
      code: "TUNNEL_NOT_FOUND",
      message: `Executor \`${r.label}\` is not completed (no TUNNEL_ID/WORKER_PORT/DIAL_ADDRESS): run \`parsl-sidecar executors complete\` first`,
    };
  }
  const t = tunnels?.get(r.tunnelId);
  if (!t)
    return {
      name: "tunnel",
      ok: false,
      code: "TUNNEL_NOT_FOUND",
      message: `Executor \`${r.label}\`: tunnel ${r.tunnelId} is not open in this sidecar (it closed, or the file was completed by another sidecar); complete the file again`,
    };
  if (tunnels?.check) {
    const c = await tunnels.check(t.id);
    if (!c.ok)
      return {
        name: "tunnel",
        ok: false,
        code: "TUNNEL_FAILED",
        message: `Executor \`${r.label}\`: the end-to-end check of tunnel ${t.id} (pool \`${r.target}\`, ${r.dialAddress} port ${r.workerPort}) failed: ${c.error ?? "no answer"}`,
      };
  }
  const dial = shCommand("executors/preflight.sh", [
    "dial",
    r.python,
    programText("executors/dial.py"),
    r.dialAddress,
    r.workerPort,
  ]);
  const res = await lease.exec(dial, { timeoutMs: 60_000 });
  const line =
    res.stdout.split("\n").find((l) => l.startsWith("PSC-TUNNEL ")) ?? "PSC-TUNNEL no answer";
  if (line !== "PSC-TUNNEL ok") {
    return {
      name: "tunnel",
      ok: false,
      code: "TUNNEL_FAILED",
      message: `Executor \`${r.label}\`: workers on pool \`${r.target}\` cannot connect to ${r.dialAddress} port ${r.workerPort} (tunnel ${t.id}, ${t.state}): ${line.slice(11)}`,
    };
  }
  return {
    name: "tunnel",
    ok: true,
    message: `${r.dialAddress}:${r.workerPort} on the pool accepts connections (tunnel ${t.id}, ${t.state})`,
  };
}

export async function preflightExecutor(
  hosts: Hosts,
  tunnels: WorkerTunnels | undefined,
  r: ResolvedExecutor,
  local: LocalVersions,
): Promise<ExecutorPreflight> {
  const out: ExecutorPreflight = {
    label: r.label,
    target: r.target,
    ok: false,
    checks: [],
    python: null,
    parsl: null,
    executable: null,
  };
  let lease: HostLease;
  try {
    lease = await hosts.acquire(r.target, `executors:preflight:${r.label}`);
    const ping = await lease.exec("echo ok", { timeoutMs: 30_000 });
    if (ping.exitCode !== 0) {
      lease.release();
      throw new SidecarError("POOL_UNREACHABLE", `\`echo ok\` failed: ${ping.stderr.trim()}`);
    }
  } catch (err) {
    const e = toSidecarError(err, "POOL_UNREACHABLE");
    out.checks.push({
      name: "reachable",
      ok: false,
      code: "POOL_UNREACHABLE",
      data: { label: r.label, target: r.target, cause_code: e.code },
      message: `Executor \`${r.label}\`: pool \`${r.target}\` is unreachable: ${e.message}`,
    });
    return out;
  }
  try {
    out.checks.push({
      name: "reachable",
      ok: true,
      message: r.isLocal ? "this machine" : `connected to ${r.target}`,
    });
    const guard = async (
      name: PreflightCheck["name"],
      fn: () => Promise<PreflightCheck>,
    ): Promise<PreflightCheck> => {
      try {
        return await fn();
      } catch (err) {
        const e = toSidecarError(err, "POOL_UNREACHABLE");
        return {
          name,
          ok: false,
          code: e.code,
          message: `Executor \`${r.label}\`: ${name} check on pool \`${r.target}\` failed: ${e.message}`,
        };
      }
    };
    out.checks.push(
      ...(await Promise.all([
        guard("versions", () => checkVersions(lease, r, local, out)),
        guard("directories", () => checkDirs(lease, r)),
        guard("tunnel", () => checkTunnel(lease, r, tunnels)),
        guard("scheduler", () => checkScheduler(lease, r)),
      ])),
    );
  } finally {
    lease.release();
  }
  out.ok = out.checks.every((c) => c.ok);
  return out;
}

/** One error for every failed check, coded by the first failure. */
export function preflightError(results: ExecutorPreflight[]): SidecarError | undefined {
  const failed = results.flatMap((r) => r.checks.filter((c) => !c.ok));
  if (failed.length === 0) return undefined;
  return new SidecarError(
    failed[0]!.code ?? "PROVIDER_FAILED",
    `Preflight failed: ${failed.map((c) => c.message).join(" | ")}`,
    {
      data: {
        failures: failed.map((c) => ({
          check: c.name,
          code: c.code,
          message: c.message,
          ...(c.data ?? {}),
        })),
      },
    },
  );
}
