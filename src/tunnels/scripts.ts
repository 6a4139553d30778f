/**
 * The small programs the sidecar sends over exec to the pool's head node: a TCP relay
 * (python3), an end-to-end probe (python3, or bash /dev/tcp), and an inspection of listening
 * sockets and addresses. Nothing is installed; nothing needs root.
 */
import { shellQuote } from "../ssh/host.js";

/** First line the probe sends; the sidecar answers `PSC-OK <token>` without touching the service. */
export const CHECK_PREFIX = "PSC-CHECK ";

/** Finds a python >= 3.4 on the pool (prints its name, or nothing). */
export const FIND_PYTHON = `for p in python3 python; do if command -v $p >/dev/null 2>&1 && $p -c 'import sys; sys.exit(sys.version_info < (3, 4))' >/dev/null 2>&1; then echo $p; break; fi; done`;

/**
 * Python, shared by both relays: bind `srv` to (lh, lp), retrying for `wait` s while the port is
 * still held (by the relay a dropped connection left); on failure print `ERROR bind ...` and
 * call `bind_failed(3)`, which the program defines.
 */
export const BIND_PY = String.raw`
srv = socket.socket(socket.AF_INET6 if ":" in lh else socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
deadline = time.time() + wait
while True:
    try:
        srv.bind((lh, lp))
        break
    except OSError as e:
        if time.time() >= deadline:
            sys.stdout.write("ERROR bind %s:%d: %s\n" % (lh, lp, e))
            sys.stdout.flush()
            bind_failed(3)
        time.sleep(0.1)
srv.listen(128)
`;

/**
 * argv: listen_host listen_port target_host target_port bind_wait_s. Prints `LISTEN host port`
 * (or `ERROR ...`), forwards every connection to the target, and exits when stdin closes.
 */
const RELAY_PY = String.raw`
import os, socket, sys, threading, time
lh, lp, th, tp, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
def say(s):
    sys.stdout.write(s + "\n")
    sys.stdout.flush()
bind_failed = sys.exit
${BIND_PY}
say("LISTEN %s %d" % (lh, srv.getsockname()[1]))
def watch():
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
def pump(a, b):
    buf = bytearray(262144)
    mv = memoryview(buf)
    try:
        while True:
            n = a.recv_into(buf)
            if not n:
                break
            b.sendall(mv[:n])
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def handle(c):
    try:
        u = socket.create_connection((th, tp))
    except OSError:
        c.close()
        return
    for s in (c, u):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = threading.Thread(target=pump, args=(u, c), daemon=True)
    t.start()
    pump(c, u)
    t.join()
    c.close()
    u.close()
while True:
    try:
        c, _ = srv.accept()
    except OSError:
        continue
    threading.Thread(target=handle, args=(c,), daemon=True).start()
`;

/** argv: host port token. Prints `RESULT ok <ms>` or `RESULT <why>`. */
const PROBE_PY = String.raw`
import socket, sys, time
h, p, tok = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.time()
try:
    s = socket.create_connection((h, p), timeout=10)
    s.sendall(("PSC-CHECK " + tok + "\n").encode())
    data = b""
    while not data.endswith(b"\n") and len(data) < 200:
        d = s.recv(200)
        if not d:
            break
        data += d
    s.close()
    line = data.decode("utf-8", "replace").strip()
    if line == "PSC-OK " + tok:
        print("RESULT ok %d" % int((time.time() - t0) * 1000))
    else:
        print("RESULT unexpected answer %r" % line[:80])
except Exception as e:
    print("RESULT %s" % e)
`;

const PROBE_BASH = String.raw`exec 3<>"/dev/tcp/$1/$2" || { echo "RESULT cannot connect to $1:$2"; exit 0; }; printf 'PSC-CHECK %s\n' "$3" >&3; IFS= read -r -t 10 line <&3; if [ "$line" = "PSC-OK $3" ]; then echo "RESULT ok 0"; else echo "RESULT unexpected answer $line"; fi`;

/** argv: port. Prints `LISTENERS addr...` for LISTEN sockets on that port (from /proc/net/tcp*). */
const LISTENERS_PY = `
import socket, sys, binascii
port = int(sys.argv[1])
out = []
for fn, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
    try:
        lines = open(fn).read().splitlines()[1:]
    except IOError:
        continue
    for l in lines:
        f = l.split()
        a, pt = f[1].split(":")
        if f[3] != "0A" or int(pt, 16) != port:
            continue
        b = binascii.unhexlify(a)
        if v6:
            out.append(socket.inet_ntop(socket.AF_INET6, b"".join(b[i:i + 4][::-1] for i in range(0, 16, 4))))
        else:
            out.append(socket.inet_ntoa(b[::-1]))
print("LISTENERS " + " ".join(out))
`;

/** Command that starts the relay with `python`. */
export function relayCommand(
  python: string,
  listenHost: string,
  listenPort: number,
  targetPort: number,
  bindWaitS: number,
): string {
  return `exec ${python} -u -c ${shellQuote(RELAY_PY)} ${shellQuote(listenHost)} ${listenPort} 127.0.0.1 ${targetPort} ${bindWaitS}`;
}

/**
 * Command that probes host:port end to end (python, else bash, else says so). It also prints
 * `SESSION <pid> <boot id>`: the pool-side sshd process of this SSH connection (the probe
 * shell's parent), which holds the connection's forwarded listeners, and the machine's boot id
 * (a pool name may lead to another login node next time; see reclaimCommand).
 */
export function probeCommand(
  python: string | undefined,
  host: string,
  port: number,
  token: string,
): string {
  const args = `${shellQuote(host)} ${port} ${shellQuote(token)}`;
  const find = python ? `py=${shellQuote(python)}` : `py=$(${FIND_PYTHON})`;
  return `echo "SESSION $PPID $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"; ${find}; if [ -n "$py" ]; then "$py" -c ${shellQuote(PROBE_PY)} ${args}; elif command -v bash >/dev/null 2>&1; then bash -c ${shellQuote(PROBE_BASH)} probe ${args}; else echo "RESULT no python3 or bash on the pool to probe with"; fi`;
}

/** Command that prints `PYTHON name`, `ADDRS a b ...`, `HOSTADDR a` and, given a port, `LISTENERS ...`. */
export function inspectCommand(port?: number): string {
  const lines = [
    `py=$(${FIND_PYTHON}); echo "PYTHON $py"`,
    `echo "ADDRS $( (ip -o -4 addr show scope global 2>/dev/null | awk '{split($4, a, "/"); print a[1]}'; [ -x "$(command -v ip)" ] || hostname -I 2>/dev/null) | tr '\\n' ' ')"`,
    `echo "HOSTADDR $(getent ahostsv4 "$(hostname)" 2>/dev/null | awk 'NR==1 {print $1}')"`,
  ];
  if (port !== undefined) {
    lines.push(
      `if [ -n "$py" ]; then $py -c ${shellQuote(LISTENERS_PY)} ${port}; else echo "LISTENERS $(ss -Hltn 2>/dev/null | awk '{print $4}' | grep ':${port}$' | sed 's/:${port}$//; s/^\\[//; s/\\]$//' | tr '\\n' ' ')"; fi`,
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
 * Run over a new connection after a reconnect: end what the previous connection left holding the
 * tunnel's ports on the pool when that connection is dead here but still alive there (a network
 * drop: sshd keeps the session, and its listener, until it notices). Only processes of this user,
 * and only the previous connection's sshd process (`sshd`/`sshd-session`, never this shell's own
 * parent) and the previous relay's process group (its command line is the relay program) are
 * killed, and only on the machine (boot id) the previous connection was on. Prints
 * `KILLED session <pid>` / `KILLED relay <pgid>` for what it ended.
 */
export function reclaimCommand(
  session: { pid: number; bootId: string },
  relayPgid: number | null,
): string {
  const g = relayPgid ?? "";
  return [
    // another machine (a login-node alias that led elsewhere) or another boot: nothing of ours here
    `[ "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" = ${shellQuote(session.bootId)} ] || exit 0`,
    `me=$(id -u); S=${session.pid}; G=${g}`,
    `mine() { [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(stat -c %u "/proc/$1" 2>/dev/null)" = "$me" ]; }`,
    `if mine "$S" && [ "$S" != "$PPID" ]; then case "$(cat "/proc/$S/comm" 2>/dev/null)" in sshd|sshd-session) kill -KILL "$S" 2>/dev/null && echo "KILLED session $S";; esac; fi`,
    `if mine "$G" && [ "$G" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] && grep -qa 'LISTEN %s %d' "/proc/$G/cmdline" 2>/dev/null; then kill -KILL "-$G" 2>/dev/null && echo "KILLED relay $G"; fi`,
    // give the kernel a moment to release the listeners of what was killed
    `i=0; while [ $i -lt 20 ] && { { [ -n "$S" ] && [ -d "/proc/$S" ] && ! grep -q '^State:.*Z' "/proc/$S/status" 2>/dev/null; } || { [ -n "$G" ] && [ -d "/proc/$G" ] && ! grep -q '^State:.*Z' "/proc/$G/status" 2>/dev/null; }; }; do sleep 0.1; i=$((i+1)); done`,
    `true`,
  ].join("\n");
}
