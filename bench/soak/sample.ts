/** The sidecar's resident memory and open file descriptors, from /proc. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export interface Sample {
  rssMb: number;
  /** the peak resident size the kernel recorded (VmHWM) */
  hwmMb: number;
  fds: number;
}

export function sample(pid: number): Sample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key: string): number =>
      Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024, fds };
  } catch {
    return undefined;
  }
}

/**
 * The sidecar's descriptors by kind (socket, pipe, anon_inode, file, ...): what grew between two
 * samples says whether it is connections kept (HTTP keep-alive, SSH) or something not closed.
 */
export function fdKinds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const n of names) {
    let t: string;
    try {
      t = readlinkSync(`/proc/${pid}/fd/${n}`);
    } catch {
      continue;
    }
    const kind = /^([a-z_]+):/.exec(t)?.[1] ?? (t.startsWith("/dev/") ? "dev" : "file");
    out[kind] = (out[kind] ?? 0) + 1;
  }
  return out;
}

/** socket inode → what it is ("tcp 127.0.0.1:41773", "unix /run/x.sock"), from /proc/PID/net. */
function socketNames(pid: number): Map<string, string> {
  const names = new Map<string, string>();
  const hexAddr = (h: string): string => {
    const [ip, port] = h.split(":") as [string, string];
    const addr =
      ip.length === 8
        ? [3, 2, 1, 0].map((i) => Number.parseInt(ip.slice(i * 2, i * 2 + 2), 16)).join(".")
        : `[${ip}]`;
    return `${addr}:${Number.parseInt(port, 16)}`;
  };
  for (const proto of ["tcp", "tcp6"]) {
    let text = "";
    try {
      text = readFileSync(`/proc/${pid}/net/${proto}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      // the remote end names what a connection is for (an S3 server, a local forward's peer)
      const state = f[3] === "0A" ? "listen" : "conn";
      names.set(f[9]!, `${proto} ${state} ${hexAddr(f[1]!)} -> ${hexAddr(f[2]!)}`);
    }
  }
  try {
    for (const line of readFileSync(`/proc/${pid}/net/unix`, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length >= 7) names.set(f[6]!, `unix ${f[7] ?? "(unnamed)"}`);
    }
  } catch {
    // no /proc/PID/net/unix
  }
  return names;
}

/** Each open descriptor's target (a socket named by socketNames, /dev/null, pipe:[...]). */
export function fdTargets(pid: number): string[] {
  let names: string[];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const sockets = socketNames(pid);
  const out: string[] = [];
  for (const n of names) {
    try {
      const t = readlinkSync(`/proc/${pid}/fd/${n}`);
      const ino = /^socket:\[(\d+)\]$/.exec(t)?.[1];
      out.push(ino && sockets.has(ino) ? `${sockets.get(ino)} [${ino}]` : t);
    } catch {
      // closed between the listing and the look
    }
  }
  return out;
}

/**
 * What was open at the end and not at the start, by target with the inode numbers dropped
 * ("socket", "/dev/ptmx"), counted: names what a descriptor leak is made of.
 */
export function fdsNew(start: string[], end: string[]): Record<string, number> {
  const left = new Map<string, number>();
  for (const t of start) left.set(t, (left.get(t) ?? 0) + 1);
  const out: Record<string, number> = {};
  for (const t of end) {
    const n = left.get(t) ?? 0;
    if (n > 0) {
      left.set(t, n - 1);
      continue;
    }
    const k = t.replace(/:?\s?\[\d+\]$/, "");
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
