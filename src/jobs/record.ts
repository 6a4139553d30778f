/**
 * Job records: one JSON file per job in `<state dir>/jobs/`, mode 0600 in a 0700 directory,
 * written atomically (temp file + rename) and updated under a short lock file so that the
 * supervising `run` and a `kill` from another terminal do not lose each other's writes.
 */
import {
  closeSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { SidecarError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { ensurePrivateDir } from "../util/private-dir.js";
import { isJobId } from "./job-id.js";
import { JobResourceSchema } from "./resources.js";

export const JOB_STATES = [
  "starting",
  "running",
  "succeeded",
  "failed",
  "killed",
  "timed-out",
  "lost",
] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_STATES: readonly JobState[] = [
  "succeeded",
  "failed",
  "killed",
  "timed-out",
  "lost",
];

const ProcRefSchema = z.object({ pid: z.number().int(), start_time: z.number() });
export type ProcRef = z.infer<typeof ProcRefSchema>;

export const JobRecordSchema = z.object({
  version: z.literal(1),
  id: z.string(),
  command: z.array(z.string()),
  cwd: z.string(),
  uid: z.number().int(),
  host: z.string(),
  state: z.enum(JOB_STATES),
  created_at: z.string(),
  started_at: z.string().nullable().default(null),
  ended_at: z.string().nullable().default(null),
  exit_code: z.number().int().nullable().default(null),
  signal: z.string().nullable().default(null),
  /** how it ended, in words */
  reason: z.string().nullable().default(null),
  timeout_ms: z.number().nullable().default(null),
  /** the `run` process that supervises COMMAND (it also hosts the sidecar unless --connection) */
  supervisor: ProcRefSchema,
  /** the sidecar serving this job: its connection file and pid */
  sidecar: z
    .object({ pid: z.number().int(), connection_file: z.string() })
    .nullable()
    .default(null),
  /** COMMAND's pid, also its process-group id */
  pgid: z.number().int().nullable().default(null),
  /** descendants seen while the job ran (they may have left the group) */
  tracked: z.array(ProcRefSchema).default([]),
  pools: z.array(z.string()).default([]),
  resources: z.array(JobResourceSchema).default([]),
  kill_requested: z
    .object({ at: z.string(), by_pid: z.number().int(), grace_ms: z.number() })
    .nullable()
    .default(null),
  cleanup: z
    .object({
      local_signalled: z.number().int(),
      local_left: z.number().int(),
      remote: z.array(z.record(z.string(), z.unknown())),
      errors: z.array(z.string()),
    })
    .nullable()
    .default(null),
});
export type JobRecord = z.infer<typeof JobRecordSchema>;

export function isFinal(state: JobState): boolean {
  return FINAL_STATES.includes(state);
}

/** The records of this user, in `<stateDir>/jobs`. */
export class JobStore {
  readonly dir: string;

  constructor(stateDir: string) {
    ensurePrivateDir(stateDir);
    this.dir = ensurePrivateDir(join(stateDir, "jobs"));
  }

  path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** Whether a record of job `id` exists; false for any string that is not a job id (an owner, a path). */
  exists(id: string): boolean {
    if (!isJobId(id)) return false;
    try {
      lstatSync(this.path(id));
      return true;
    } catch {
      return false;
    }
  }

  /** Read one record; JOB_NOT_FOUND if there is none, JOB_NOT_OWNED if its file is not ours. */
  read(id: string): JobRecord {
    const file = this.path(id);
    let text: string;
    try {
      const st = lstatSync(file);
      if (!st.isFile())
        throw new SidecarError("JOB_NOT_FOUND", `No job \`${id}\`: ${file} is not a regular file`);
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) {
        throw new SidecarError(
          "JOB_NOT_OWNED",
          `Job \`${id}\` belongs to uid ${st.uid}, not to you (uid ${uid}); only its owner can see or stop it`,
          { data: { job: id, owner_uid: st.uid } },
        );
      }
      text = readFileSync(file, "utf8");
    } catch (err) {
      if (err instanceof SidecarError) throw err;
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new SidecarError(
          "JOB_NOT_FOUND",
          `No job \`${id}\` in ${this.dir}; \`parsl-sidecar jobs\` lists the known jobs`,
          { data: { job: id } },
        );
      }
      throw new SidecarError(
        "JOB_NOT_OWNED",
        `Cannot read job \`${id}\` (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); only its owner can see or stop it`,
        { data: { job: id } },
      );
    }
    let rec: JobRecord;
    try {
      rec = JobRecordSchema.parse(JSON.parse(text));
    } catch (err) {
      throw new SidecarError(
        "JOB_NOT_FOUND",
        `The record of job \`${id}\` (${file}) is damaged: ${(err as Error).message.slice(0, 200)}`,
        { cause: err, data: { job: id } },
      );
    }
    const uid = process.getuid?.();
    if (uid !== undefined && rec.uid !== uid) {
      throw new SidecarError(
        "JOB_NOT_OWNED",
        `Job \`${id}\` was started by uid ${rec.uid}, not by you (uid ${uid}); only its owner can stop it`,
        { data: { job: id, owner_uid: rec.uid } },
      );
    }
    return rec;
  }

  /** Write a record atomically, mode 0600. */
  write(rec: JobRecord): void {
    writeFileAtomic(this.path(rec.id), `${JSON.stringify(rec, null, 2)}\n`, { mode: 0o600 });
  }

  /** Read, change and write a record under the record's lock. */
  update(id: string, change: (rec: JobRecord) => void): JobRecord {
    return this.withLock(id, () => {
      const rec = this.read(id);
      change(rec);
      this.write(rec);
      return rec;
    });
  }

  /** Every readable record of this user, newest first; damaged ones are skipped. */
  list(): JobRecord[] {
    const out: JobRecord[] = [];
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith(".json")) continue;
      try {
        out.push(this.read(name.slice(0, -5)));
      } catch {
        // a damaged record or one of another user: not listed
      }
    }
    return out.sort((a, b) => b.created_at.localeCompare(a.created_at));
  }

  remove(id: string): void {
    rmSync(this.path(id), { force: true });
  }

  private withLock<T>(id: string, fn: () => T): T {
    const lock = `${this.path(id)}.lock`;
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        closeSync(openSync(lock, "wx", 0o600));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        // a lock older than 2 s belongs to a writer that died
        try {
          if (Date.now() - statSync(lock).mtimeMs > 2000) rmSync(lock, { force: true });
        } catch {
          // gone meanwhile
        }
        if (Date.now() > deadline)
          throw new SidecarError(
            "INTERNAL",
            `Job record ${id} stayed locked (${lock}); remove the lock file if no parsl-sidecar is running`,
          );
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      }
    }
    try {
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }
}
