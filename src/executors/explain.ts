/** `executors explain`: what each key means and what each pool must provide, from the key table. */
import { GROUP_TITLES, KEYS, type KeyGroup, type KeySpec } from "./keys.js";
import { checkExecutors } from "./check.js";
import { resolveExecutor, type ResolvedExecutor } from "./resolve.js";

export interface Versions {
  python: string;
  parsl: string;
}

export interface KeyExplanation {
  name: string;
  group: KeyGroup;
  description: string;
  default?: string;
  providers?: readonly string[];
  deprecated?: string;
  example?: string;
}

export interface PoolRequirements {
  label: string;
  target: string;
  provider: string;
  requirements: string[];
}

export function explainKeys(): KeyExplanation[] {
  return KEYS.map((k: KeySpec) => {
    const out: KeyExplanation = { name: k.name, group: k.group, description: k.description };
    if (k.default !== undefined) out.default = k.default;
    if (k.providers) out.providers = k.providers;
    if (k.deprecated) out.deprecated = k.deprecated;
    if (k.example !== undefined) out.example = k.example;
    return out;
  });
}

/** What one pool must provide, in plain sentences. */
export function poolRequirements(r: ResolvedExecutor, local?: Versions): string[] {
  const ver = local
    ? `Python ${minor(local.python)}.x and Parsl ${local.parsl} (the versions on this machine)`
    : "the same Python minor version and Parsl version as this machine";
  const where = r.provider === "local" ? "the head node" : "the head node and every compute node";
  const req: string[] = [];
  if (r.isLocal) req.push("Runs on this machine (SSH_TARGET local): no SSH, no tunnel.");
  else {
    req.push(
      `SSH access as \`${r.target}\` with a key (ssh-agent or IdentityFile) and the host key in known_hosts or accepted on first use; sshd must allow TCP forwarding (AllowTcpForwarding yes, the default).`,
    );
  }
  req.push(
    `\`${r.python}\` on ${where} (after WORKER_INIT) with ${ver}; the preflight refuses to start workers otherwise.`,
  );
  req.push(
    `Writable directories on ${where}: RUN_DIR ${r.runDir}, WORKER_LOGDIR_ROOT ${r.workerLogdirRoot}${r.provider === "local" ? "" : `, submit scripts in ${r.scriptDir}`} (a shared filesystem for compute nodes).`,
  );
  if (r.provider === "slurm")
    req.push("Slurm client commands on the head node's PATH: sbatch, squeue (or sacct), scancel.");
  if (r.provider === "pbspro")
    req.push("PBS Pro client commands on the head node's PATH: qsub, qstat, qdel.");
  if (r.isLocal) req.push("Ports: the interchange binds 127.0.0.1 here; workers dial it directly.");
  else if (r.provider === "local") {
    req.push(
      "Ports: none opened by hand. The sidecar picks a free port on the head node's loopback (WORKER_PORT) and carries it to the interchange on 127.0.0.1 here (INTERCHANGE_PORT) through a reverse SSH tunnel, by way of a small relay (python3, no root) that keeps the workers' connections across a dropped SSH connection.",
    );
  } else {
    req.push(
      "Ports: none opened by hand. The sidecar runs a small relay on the head node (python3, no root) listening on the head node's cluster-side address (DIAL_ADDRESS:WORKER_PORT); it keeps the workers' connections across a dropped SSH connection. Compute nodes must be able to reach the head node on that port, which the cluster network usually allows.",
    );
  }
  return req;
}

function minor(v: string): string {
  return v.split(".").slice(0, 2).join(".");
}

export function explainPools(json: unknown, local?: Versions): PoolRequirements[] {
  const res = checkExecutors(json);
  return Object.entries(res.executors).map(([label, e]) => {
    const r = resolveExecutor(label, e);
    return {
      label,
      target: r.target,
      provider: r.provider,
      requirements: poolRequirements(r, local),
    };
  });
}

function wrap(text: string, indent: string, width = 96): string {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = "";
  for (const w of words) {
    if (cur && cur.length + w.length + 1 > width - indent.length) {
      lines.push(cur);
      cur = w;
    } else cur = cur ? `${cur} ${w}` : w;
  }
  if (cur) lines.push(cur);
  return lines.map((l) => indent + l).join("\n");
}

/** The human text of `executors explain [FILE]`. */
export function explainText(json?: unknown, local?: Versions): string {
  const out: string[] = [];
  out.push(
    "executors.json: one entry per Parsl executor label; each says which pool runs that executor's workers and how.",
  );
  out.push(
    'Numbers and booleans may be JSON values or strings ("4", "true"). Unknown keys are kept and reported.\n',
  );
  const used =
    json !== undefined
      ? new Set(Object.values(checkExecutors(json).executors).flatMap((e) => Object.keys(e)))
      : undefined;
  for (const group of Object.keys(GROUP_TITLES) as KeyGroup[]) {
    const keys = KEYS.filter((k) => k.group === group && (!used || used.has(k.name)));
    if (keys.length === 0) continue;
    out.push(`${GROUP_TITLES[group]}:`);
    for (const k of keys) {
      const extra = [
        k.default !== undefined ? `default: ${k.default}` : "",
        k.providers ? `PROVIDER ${k.providers.join("/")}` : "",
        k.deprecated ? "deprecated" : "",
      ]
        .filter(Boolean)
        .join("; ");
      out.push(`  ${k.name}${extra ? `  (${extra})` : ""}`);
      out.push(wrap(k.description, "      "));
    }
    out.push("");
  }
  if (json === undefined) {
    out.push("What every pool must provide:");
    out.push(
      wrap(
        "SSH access with a key; python3 with the same Python minor version and the same Parsl version as this machine (Parsl refuses other workers); writable RUN_DIR and WORKER_LOGDIR_ROOT; for slurm/pbspro the scheduler's client commands on the head node and a filesystem shared with the compute nodes. No port needs opening: the sidecar tunnels the worker port (and relays it to compute nodes).",
        "  ",
      ),
    );
    out.push(
      "\nRun `parsl-sidecar executors explain FILE` for the requirements of each pool in a file.",
    );
    return out.join("\n");
  }
  const checked = checkExecutors(json);
  for (const e of checked.errors) out.push(`Invalid: ${e.message}`);
  if (checked.errors.length > 0) out.push("");
  for (const pool of explainPools(json, local)) {
    out.push(
      `Executor ${pool.label}: pool \`${pool.target}\`, PROVIDER ${pool.provider}. The pool must provide:`,
    );
    for (const r of pool.requirements) out.push(wrap(r, "    ").replace(/^ {4}/, "  - "));
    out.push("");
  }
  return out.join("\n").trimEnd();
}
