/**
 * The SSH transports a bench measures (`--transport ssh2|openssh`, default both), the cipher
 * pinned on both sides where throughput is compared, and helpers to see what a run negotiated.
 */
import { readFileSync } from "node:fs";
import type { TransportKind } from "../../src/ssh/link.js";
import { mastersUnder } from "../../src/ssh/openssh/conn.js";

/** OpenSSH and ssh2 both offer it, and both pick it first on a CPU with AES instructions. */
export const CIPHER = "aes128-gcm@openssh.com";

/** `--transport X` or `--transport=X`; both transports when not given. */
export function benchTransports(argv: string[] = process.argv): TransportKind[] {
  const i = argv.findIndex((a) => a === "--transport" || a.startsWith("--transport="));
  if (i < 0) return ["ssh2", "openssh"];
  const v = argv[i]!.includes("=") ? argv[i]!.split("=")[1] : argv[i + 1];
  if (v !== "ssh2" && v !== "openssh")
    throw new Error(`--transport takes ssh2 or openssh, not ${String(v)}`);
  return [v];
}

/**
 * The pid of the ControlMaster an openssh link started under `runtimeDir` (its control socket
 * is there): the process whose CPU carries the openssh transport's bytes.
 */
export function masterPid(runtimeDir: string): number | undefined {
  return mastersUnder(runtimeDir)[0];
}

/** CPU seconds (user + system) a process has used so far; this process's own through Node. */
export function cpuSeconds(pid: number): number {
  if (pid === process.pid) {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** the middle value; the mean of the two middle ones for an even count (2 rounds: their mean) */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = Math.floor(s.length / 2);
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** p-quantile of samples (0..1), nearest rank. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}
