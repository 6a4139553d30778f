/**
 * What a soak run left after its teardown (`parsl-sidecar run` has exited), counted one by one:
 * - here: live processes whose command line names the run's directory (interchange, workflow,
 *   ssh ControlMasters under the runtime dir) or whose environment has the run's job id, and
 *   the sidecar itself;
 * - on each pool: live processes in its namespaces other than the sshd listener and the Slurm
 *   daemons (workers, relays, sessions, per-connection sshd);
 * - listeners: TCP sockets listening in a pool's namespaces other than sshd's and Slurm's, and
 *   the executors' interchange and worker ports here;
 * - partial files: `*.partial` and the stores' temporary names (`.NAME.psc-XXXX.tmp`) under the
 *   run's directory, S3 multipart uploads not completed, GCS objects with a temporary name;
 * - Slurm jobs still in the queue.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ListMultipartUploadsCommand, S3Client } from "@aws-sdk/client-s3";
import type { Bed } from "./bed.js";
import { namespaceId } from "./chaos.js";
import { alive } from "../../test/testbed/procs.js";

export interface Leftovers {
  total: number;
  breakdown: Record<string, number>;
  /** a line per thing left, for the log */
  items: string[];
}

const TEMP = /(\.partial$)|(\.psc-[A-Za-z0-9_-]+\.tmp$)/;

function cmdline(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {
    return "";
  }
}

/** the network namespace of a process ("" once it is gone) */
function netnsOf(pid: string): string {
  try {
    return namespaceId(`/proc/${pid}/ns/net`);
  } catch {
    return "";
  }
}

function listening(ns: string | undefined): number[] {
  const cmd = ns ? ["ip", "netns", "exec", ns, "ss", "-Hltn"] : ["ss", "-Hltn"];
  const out = execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8" });
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => Number(l.trim().split(/\s+/)[3]?.split(":").pop()));
}

function tempFiles(dir: string, out: string[]): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = join(dir, name);
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) tempFiles(p, out);
    else if (TEMP.test(name)) out.push(p);
  }
}

export async function countLeftovers(
  bed: Bed,
  o: { dir: string; job: string; sidecarPid: number; ports: number[]; bucket: string },
): Promise<Leftovers> {
  const items: string[] = [];
  const breakdown: Record<string, number> = {};
  const add = (key: string, what: string): void => {
    breakdown[key] = (breakdown[key] ?? 0) + 1;
    items.push(`${key}: ${what}`);
  };
  for (const k of ["here", "listeners_here", "partial_files", "s3_uploads", "slurm_jobs"])
    breakdown[k] = 0;
  for (const p of bed.pools) {
    breakdown[`pool_${p.label}`] = 0;
    breakdown[`listeners_${p.label}`] = 0;
  }

  const nsOfPool = new Map<string, string>();
  for (const p of bed.pools)
    for (const ns of p.namespaces) nsOfPool.set(namespaceId(`/run/netns/${ns}`), p.label);
  const keep = new Set(bed.pools.map((p) => String(p.sshd.pid)));
  const daemons = /^(slurmctld|slurmscriptd|slurmd|munged)$/;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid || !alive(Number(pid))) continue;
    const cmd = cmdline(pid);
    const pool = nsOfPool.get(netnsOf(pid));
    if (pool !== undefined) {
      let comm = "";
      try {
        comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      } catch {
        continue;
      }
      if (keep.has(pid) || daemons.test(comm)) continue;
      add(`pool_${pool}`, `${pid} ${cmd.slice(0, 160)}`);
      continue;
    }
    let env = "";
    try {
      env = readFileSync(`/proc/${pid}/environ`, "utf8");
    } catch {
      /* not ours to read */
    }
    if (
      Number(pid) === o.sidecarPid ||
      cmd.includes(o.dir) ||
      env.includes(`PARSL_SIDECAR_JOB=${o.job}\0`)
    ) {
      add("here", `${pid} ${cmd.slice(0, 160)}`);
    }
  }

  for (const p of bed.pools) {
    const allowed = new Set([p.sshd.port, bed.slurm.ctldPort, bed.slurm.slurmdPort]);
    for (const ns of p.namespaces) {
      for (const port of listening(ns)) {
        if (!allowed.has(port)) add(`listeners_${p.label}`, `${ns} port ${port}`);
      }
    }
  }
  const here = new Set(listening(undefined));
  for (const port of o.ports) if (here.has(port)) add("listeners_here", `port ${port}`);

  const temp: string[] = [];
  tempFiles(o.dir, temp);
  for (const f of temp) add("partial_files", f);

  const s3 = new S3Client({
    endpoint: bed.s3.endpoint,
    forcePathStyle: true,
    region: bed.s3.region,
    credentials: { accessKeyId: bed.s3.accessKeyId, secretAccessKey: bed.s3.secretAccessKey },
  });
  try {
    const up = await s3.send(new ListMultipartUploadsCommand({ Bucket: o.bucket }));
    for (const u of up.Uploads ?? []) add("s3_uploads", `s3://${o.bucket}/${u.Key}`);
  } catch (err) {
    items.push(`s3 uploads not listed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    s3.destroy();
  }
  try {
    const res = await fetch(`${bed.gcs.apiEndpoint}/storage/v1/b/${o.bucket}/o`);
    const body = (await res.json()) as { items?: Array<{ name: string }> };
    for (const it of body.items ?? []) {
      if (TEMP.test(it.name.split("/").pop() ?? "")) add("partial_files", `gs://${it.name}`);
    }
  } catch (err) {
    items.push(`gcs objects not listed: ${err instanceof Error ? err.message : String(err)}`);
  }

  const q = await bed.slurm.run(["squeue", "-h", "-o", "%i %j %T"]);
  for (const line of q.stdout.split("\n").filter(Boolean)) add("slurm_jobs", line.trim());

  const total = Object.values(breakdown).reduce((a, b) => a + b, 0);
  return { total, breakdown, items };
}
