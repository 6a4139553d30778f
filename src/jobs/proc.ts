/**
 * Reading processes from /proc (Linux): parent, process group, session, state and start time
 * of each, and whether its environment carries a job's marker. `ps` is not used: its options
 * differ between systems and tree-kill libraries silently kill nothing where it lacks --ppid.
 */
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  /** R, S, D, Z (zombie), T (stopped), X (dead), ... */
  state: string;
  /** start time in clock ticks since boot: with the pid, it identifies a process across pid reuse */
  startTime: number;
  comm: string;
}

/** The environment variable that marks every process of a job, also after it left the group. */
export const JOB_ENV = "PARSL_SIDECAR_JOB";

export function procAvailable(): boolean {
  try {
    readFileSync("/proc/self/stat");
    return true;
  } catch {
    return false;
  }
}

export function parseStat(text: string): ProcInfo | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < 0) return undefined;
  const f = text.slice(close + 2).split(" ");
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: f[0]!,
    ppid: Number(f[1]),
    pgid: Number(f[2]),
    sid: Number(f[3]),
    startTime: Number(f[19]),
  };
}

// one buffer for every read: listProcs reads a few hundred of these per scan (a stat line is
// ~300 bytes; readFileSync's fstat and fresh buffer per file doubled the cost of a scan)
const statBuf = Buffer.alloc(4096);

export function readProc(pid: number | "self"): ProcInfo | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, "r");
  } catch {
    return undefined;
  }
  try {
    const n = readSync(fd, statBuf, 0, statBuf.length, null);
    return parseStat(
      n < statBuf.length
        ? statBuf.toString("latin1", 0, n)
        : readFileSync(`/proc/${pid}/stat`, "latin1"),
    );
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Every process visible in /proc, zombies included. */
export function listProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync("/proc")) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const p = readProc(Number(name));
    if (p) out.push(p);
  }
  return out;
}

/** True if the process's environment has exactly `NAME=value` (false when it cannot be read). */
export function hasEnvEntry(pid: number, entry: string): boolean {
  let buf: Buffer;
  try {
    buf = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  const needle = Buffer.from(`${entry}\0`);
  let at = buf.indexOf(needle);
  while (at >= 0) {
    if (at === 0 || buf[at - 1] === 0) return true;
    at = buf.indexOf(needle, at + 1);
  }
  // the last entry may lack its terminating NUL
  const last = Buffer.from(entry);
  return (
    buf.length >= last.length &&
    buf.subarray(buf.length - last.length).equals(last) &&
    (buf.length === last.length || buf[buf.length - last.length - 1] === 0)
  );
}

export function isGone(p: ProcInfo): boolean {
  return p.state === "Z" || p.state === "X" || p.state === "x";
}

/** Whether this exact process (pid and start time) is still running (not a zombie). */
export function procAlive(pid: number, startTime: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.startTime === startTime && !isGone(p);
}

let selfStart: number | undefined;

/** This process's start time (clock ticks since boot); 0 where /proc cannot be read. */
export function selfStartTime(): number {
  selfStart ??= readProc(process.pid)?.startTime ?? 0;
  return selfStart;
}
