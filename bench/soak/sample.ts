/** The sidecar's resident memory and open file descriptors, from /proc. */
import { readdirSync, readFileSync } from "node:fs";

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
