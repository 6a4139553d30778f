/**
 * The checks a reverse tunnel runs over exec on the pool's head node: the end-to-end probe, the
 * inspection of its python, addresses and listeners, and the reclaim after a reconnect. The
 * programs are in src/remote/tunnels/ (each says what it reads and prints); here they are put on a
 * command line, and their `KEY value` lines read back. Nothing is installed; nothing needs root.
 */
import { bashCommand, pyCommand, shCommand } from "../remote/index.js";
import { shellQuote } from "../ssh/host.js";

/** First line the probe sends; the sidecar answers `PSC-OK <token>` without touching the service. */
export const CHECK_PREFIX = "PSC-CHECK ";

/** Prints the name of a python >= 3.4 on the pool, or nothing. */
const FIND_PYTHON = shCommand("tunnels/find-python.sh");

/**
 * Command that probes host:port end to end (python, else bash, else says so): `RESULT ok <ms>`
 * or `RESULT <why>`; `direct` (the master connects to the service itself): `SRC <port>` first,
 * and the sidecar reads the outcome from the master's log. It also prints `SESSION <pid> <boot id>`: the pool-side sshd process of this
 * SSH connection (the probe shell's parent), which holds the connection's forwarded listeners,
 * and the machine's boot id (a pool name may lead to another login node next time; see
 * reclaimCommand).
 */
export function probeCommand(
  python: string | undefined,
  host: string,
  port: number,
  token: string,
  direct = false,
): string {
  const args = direct ? [host, port, token, "direct"] : [host, port, token];
  const find = python ? `py=${shellQuote(python)}` : `py=$(${FIND_PYTHON})`;
  const viaPython = pyCommand('"$py"', "tunnels/probe.py", args);
  // bash, not sh, runs the fallback (its /dev/tcp)
  const viaBash = bashCommand("tunnels/probe-tcp.bash", args);
  return `echo "SESSION \${PARSL_SIDECAR_SSHD_PID:-$PPID} $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"; ${find}; if [ -n "$py" ]; then ${viaPython}; elif command -v bash >/dev/null 2>&1; then ${viaBash}; else echo "RESULT no python3 or bash on the pool to probe with"; fi`;
}

/** Command that prints `PYTHON name`, `ADDRS a b ...`, `HOSTADDR a` and, given a port, `LISTENERS ...`. */
export function inspectCommand(port?: number): string {
  const lines = [`py=$(${FIND_PYTHON}); echo "PYTHON $py"`, shCommand("tunnels/inspect.sh")];
  if (port !== undefined) {
    const viaPython = pyCommand("$py", "tunnels/listeners.py", [port]);
    lines.push(
      `if [ -n "$py" ]; then ${viaPython}; else ${shCommand("tunnels/listeners.sh", [port])}; fi`,
    );
  }
  return lines.join("\n");
}

/** Parse `KEY value...` lines. */
export function parseLines(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z]+) ?(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.trim();
  }
  return out;
}

/**
 * Run over a new connection after a reconnect: ends the previous connection's sshd session and
 * the previous relay's process group when they are still alive on the pool and hold the tunnel's
 * ports (src/remote/tunnels/reclaim.sh says exactly what it kills, and when). Prints
 * `KILLED session <pid>` / `KILLED relay <pgid>` for what it ended.
 */
export function reclaimCommand(
  session: { pid: number; bootId: string },
  relayPgid: number | null,
): string {
  // expands here, in the exec's shell: this connection's own sshd process (its parent over ssh2;
  // over openssh the session program's parent, which it exports)
  return shCommand("tunnels/reclaim.sh", [
    session.bootId,
    session.pid,
    relayPgid ?? "",
    { shell: '"${PARSL_SIDECAR_SSHD_PID:-$PPID}"' },
  ]);
}
