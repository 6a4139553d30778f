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
