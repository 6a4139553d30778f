/**
 * The durable relay (docs/tunnels.md, "Durable tunnels"): a python3 program the sidecar starts on
 * the head node. Workers connect to it; it carries each connection to the sidecar through the
 * tunnel's forwarded loopback port, framed and numbered (durable-frames.ts), and keeps the
 * workers' connections open while the SSH connection is down, resuming each one when the link is
 * back. It lives in its own session, so a dropped SSH connection does not end it; it exits when
 * the sidecar says so (`S`), when it is killed, or after `resume_s` without the sidecar.
 *
 * Python 3.4 or newer, standard library only; one thread (selectors). Nothing is installed:
 * the program travels on its command line; the secret comes on stdin.
 */
import { shellQuote } from "../ssh/host.js";
import { BIND_PY } from "./scripts.js";

/**
 * argv: listen_host listen_port bind_wait_s upstream_port state_root resume_s ping_s relay_id.
 * stdin: one line, the secret in hex. Prints `LISTEN host port` (or `ERROR ...`) and nothing more.
 */
const DURABLE_RELAY_PY = String.raw`
import binascii, errno, hashlib, hmac, os, selectors, shutil, signal, socket, struct, sys, time, traceback
lh, lp, wait, up_port = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
root, resume_s, ping_s, rid = sys.argv[5], float(sys.argv[6]), float(sys.argv[7]), sys.argv[8]
secret = binascii.unhexlify(sys.stdin.readline().strip())
HELLO = "PSC-DURABLE/1"
MAX_DATA, HIGH, ACK_BYTES, ACK_DELAY = 262144, 8 << 20, 262144, 0.02
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
RBUF = bytearray(262144)
RVIEW = memoryview(RBUF)
sel = selectors.DefaultSelector()
state = os.path.join(root, rid)
os.makedirs(state, 0o700)
def write_port(p):
    tmp = os.path.join(state, "port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % p)
    os.rename(tmp, os.path.join(state, "port"))
write_port(up_port)
logf = open(os.path.join(state, "relay.log"), "a")
def log(msg):
    try:
        logf.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
        logf.flush()
    except Exception:
        pass
def read_port():
    try:
        with open(os.path.join(state, "port")) as f:
            return int(f.read().strip())
    except Exception:
        return up_port
def mac(text):
    return hmac.new(secret, text.encode("latin1"), hashlib.sha256).hexdigest()
def nonce():
    return binascii.hexlify(os.urandom(16)).decode()
def bye(code):
    log("exit %d" % code)
    shutil.rmtree(state, True)
    os._exit(code)
signal.signal(signal.SIGTERM, lambda *a: bye(0))
signal.signal(signal.SIGHUP, signal.SIG_IGN)
# week-old state of relays that were killed before they could remove it
for name in os.listdir(root):
    p = os.path.join(root, name)
    try:
        if name != rid and time.time() - os.stat(p).st_mtime > 7 * 86400:
            shutil.rmtree(p, True)
    except OSError:
        pass

class Sock(object):
    """A non-blocking socket with an output buffer; events go to its owner."""
    def __init__(self, s, owner, connecting=False):
        s.setblocking(False)
        self.s, self.owner, self.out, self.reading, self.connecting = s, owner, bytearray(), True, connecting
        self.closed, self.ev, self.shut_after, self.close_after = False, 0, False, False
        self.update()
    def update(self):
        if self.closed:
            return
        ev = (W if self.connecting or self.out else 0) | (R if self.reading and not self.connecting else 0)
        if ev == self.ev:
            return
        if self.ev and ev:
            sel.modify(self.s, ev, self)
        elif ev:
            sel.register(self.s, ev, self)
        else:
            sel.unregister(self.s)
        self.ev = ev
    def send(self, *parts):
        if self.closed:
            return
        for p in parts:
            self.out += p
        self.flush()
    def write_some(self):
        """Send from the buffer without copying it: bytes sent, 0 if the socket is full, -1 if it failed."""
        view = memoryview(self.out)
        chunk = view[:1048576]
        try:
            return self.s.send(chunk)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            return -1
        finally:
            # released before the buffer is resized (a live view forbids it)
            chunk.release()
            view.release()
    def flush(self):
        if self.closed:
            return
        while self.out and not self.connecting:
            n = self.write_some()
            if n < 0:
                self.owner.lost(self)
                return
            if n == 0:
                break
            del self.out[:n]
        if not self.out and self.close_after:
            self.close()
            return
        if not self.out and self.shut_after:
            self.shut_after = False
            try:
                self.s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        self.update()
    def finish(self):
        """Close once the output is written."""
        self.close_after = True
        self.flush()
    def close(self):
        if self.closed:
            return
        if self.ev:
            sel.unregister(self.s)
        self.closed, self.ev = True, 0
        try:
            self.s.close()
        except OSError:
            pass
    def ready(self, ev):
        if self.connecting:
            err = self.s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.owner.lost(self)
                return
            self.connecting = False
            self.update()
            self.owner.connected(self)
            return
        if ev & W:
            self.flush()
        if ev & R and not self.closed and self.reading:
            try:
                n = self.s.recv_into(RBUF)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.owner.lost(self)
                return
            if n:
                # one buffer for every read (recv(n) would allocate n bytes per call, above
                # malloc's mmap threshold: a map and unmap for each small message); the owner
                # gets a view of it, used before the next read (Session.data copies what it keeps)
                self.owner.data(self, RVIEW[:n])
            else:
                self.owner.eof(self)

class Frames(object):
    def __init__(self):
        self.head, self.left = b"", 0
    def push(self, buf, on):
        buf = memoryview(buf)
        while len(buf):
            if self.left:
                n = min(self.left, len(buf))
                self.left -= n
                on("D", buf[:n])
                buf = buf[n:]
                continue
            b = self.head + bytes(buf[:13])
            t = b[:1].decode("latin1")
            need = {"D": 5, "K": 13}.get(t, 1 if t in "EFXPQS" and t else 0)
            if not need:
                raise ValueError("unknown frame type %r" % t)
            if len(b) < need:
                self.head = b
                return
            used = need - len(self.head)
            self.head = b""
            if t == "D":
                self.left = struct.unpack(">I", b[1:5])[0]
                if not 0 < self.left <= MAX_DATA:
                    raise ValueError("data frame of %d bytes" % self.left)
            elif t == "K":
                conn, hi, lo = struct.unpack(">III", b[1:13])
                on("K", (conn, hi * 4294967296 + lo))
            else:
                on(t, None)
            buf = buf[used:]
    def reset(self):
        self.head, self.left = b"", 0

def send_data(up, b):
    """Data frames of b: each a header and its part, put in the buffer without joining them first."""
    for i in range(0, len(b), MAX_DATA):
        part = b[i:i + MAX_DATA]
        up.send(struct.pack(">BI", 0x44, len(part)), part)

class Upstream(object):
    """One connection to the sidecar through the forwarded port: handshake, then frames."""
    def __init__(self, owner, kind, conn_id, mode, received):
        self.owner, self.kind, self.conn_id = owner, kind, conn_id
        self.up, self.line, self.frames = False, b"", Frames()
        self.nonce, self.started = nonce(), time.time()
        self.hello = "%s %s %s %s %s %d %s" % (HELLO, rid, kind, conn_id, mode, received, self.nonce)
    def start(self):
        """Connect (call after the owner holds this upstream: a refusal reports at once)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = Sock(s, self, connecting=True)
        err = s.connect_ex(("127.0.0.1", read_port()))
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self.sock.connecting = False
            self.fail("connect: %s" % os.strerror(err))
        return self
    def connected(self, _s):
        self.sock.send((self.hello + "\n").encode("latin1"))
    def fail(self, why):
        self.sock.close()
        self.owner.up_lost(self, why)
    def lost(self, _s):
        self.fail("lost")
    def eof(self, _s):
        self.fail("closed by the sidecar")
    def data(self, _s, data):
        if self.up:
            try:
                self.frames.push(data, self.owner.frame)
            except ValueError as e:
                self.fail(str(e))
            return
        self.line += data
        nl = self.line.find(b"\n")
        if nl < 0:
            if len(self.line) > 512:
                self.fail("no handshake line")
            return
        reply, rest = self.line[:nl].decode("latin1"), self.line[nl + 1:]
        self.line = b""
        w = reply.split(" ")
        if w[0] in ("OK", "GONE") and len(w) >= 3 and hmac.compare_digest(w[-1], mac(self.hello + "|" + " ".join(w[:-1]))):
            if w[0] == "GONE":
                self.sock.close()
                self.owner.up_gone(self)
                return
            self.sock.send((mac("r|" + w[-2]) + "\n").encode("latin1"))
            self.up = True
            self.owner.up_ready(self, int(w[1]))
            if rest and not self.sock.closed:
                self.data(None, rest)
            return
        self.fail("refused: %s" % reply[:80])
    def send(self, *parts):
        self.sock.send(*parts)
    def close(self):
        self.sock.close()

sessions = {}
ctl = {"up": None, "ok_at": time.time(), "rx_at": 0.0, "ping_at": 0.0, "next_try": 0.0}
counter = [0]

class Control(object):
    def start(self):
        ctl["next_try"] = time.time() + 0.5
        ctl["up"] = Upstream(self, "ctl", 0, "new", 0)
        ctl["up"].start()
    def up_ready(self, up, _off):
        ctl["ok_at"] = ctl["rx_at"] = ctl["ping_at"] = time.time()
        ctl["ready"] = up
        log("control up")
        for s in list(sessions.values()):
            s.try_attach()
    def up_lost(self, up, why):
        if ctl.get("ready") is up:
            log("control lost: %s" % why)
            link_down()
        ctl["up"] = ctl["ready"] = None
    def up_gone(self, up):
        self.up_lost(up, "gone")
    def frame(self, t, v):
        ctl["rx_at"] = time.time()
        if t == "K":
            s = sessions.get(v[0])
            if s is not None:
                s.trim(v[1])
        elif t == "S":
            log("stop")
            bye(0)
control = Control()

def link_down():
    # whatever still looks connected shares the dead link: cut it and resume on the next one
    for s in list(sessions.values()):
        if s.up:
            u, s.up = s.up, None
            u.close()
            s.cut()
    if ctl.get("up"):
        ctl["up"].close()
    ctl["up"] = ctl["ready"] = None

class Session(object):
    def __init__(self, ws):
        counter[0] += 1
        self.id = counter[0]
        self.worker = Sock(ws, self)
        self.up, self.ready, self.new, self.retry_at = None, False, True, 0.0
        self.received = self.acked = self.base = self.sent = 0
        self.queue, self.ending, self.peer_ended, self.peer_got_end = [], False, False, False
        self.cut_at, self.ack_due = None, None
        sessions[self.id] = self
        self.try_attach()
    def try_attach(self):
        if self.up is None and ctl.get("ready") and time.time() >= self.retry_at:
            self.ready = False
            self.up = Upstream(self, "data", self.id, "new" if self.new else "resume", self.received)
            self.up.start()
    def cut(self):
        self.ready = False
        if self.cut_at is None:
            self.cut_at = time.time()
    # upstream events
    def up_ready(self, up, peer_received):
        if peer_received < self.base or peer_received > self.sent:
            log("conn %d: cannot resume at %d (have %d..%d)" % (self.id, peer_received, self.base, self.sent))
            return self.end(True)
        if not self.new:
            log("conn %d resumed at %d, %d bytes sent again" % (self.id, peer_received, self.sent - peer_received))
        self.new, self.ready, self.cut_at = False, True, None
        self.trim(peer_received)
        self.acked = self.received
        for b in self.queue:
            send_data(up, b)
        if self.ending:
            up.send(b"E")
        if self.peer_ended:
            up.send(b"F")
    def up_lost(self, up, why):
        if self.up is up:
            self.up = None
            self.retry_at = time.time() + 0.2
            self.cut()
    def up_gone(self, up):
        if self.up is up:
            log("conn %d: the sidecar no longer has it" % self.id)
            self.up = None
            self.end(True)
    def frame(self, t, v):
        if t == "D":
            self.received += len(v)
            self.worker.send(v)
            if len(self.worker.out) > HIGH and self.up:
                self.up.sock.reading = False
                self.up.sock.update()
            if self.received - self.acked >= ACK_BYTES:
                self.ack()
            elif self.ack_due is None:
                self.ack_due = time.time() + ACK_DELAY
        elif t == "E":
            if not self.peer_ended:
                self.peer_ended = True
                self.ack()
                self.worker.shut_after = True
                self.worker.flush()
                if self.up:
                    self.up.send(b"F")
                self.done()
        elif t == "F":
            self.peer_got_end = True
            self.done()
        elif t == "X":
            self.end(True)
        elif t == "P" and self.up:
            self.up.send(b"Q")
    def ack(self):
        # on the control channel: on the data channel it could wait behind data the sidecar
        # stopped reading, while the sidecar waits for it (docs/tunnels.md)
        self.ack_due = None
        if self.received == self.acked or not (self.up and self.ready):
            return
        c = ctl.get("ready")
        if c is None:
            self.ack_due = time.time() + 0.2  # the control channel is down: again soon
            return
        c.send(struct.pack(">BIII", 0x4B, self.id, self.received // 4294967296, self.received % 4294967296))
        self.acked = self.received
    def trim(self, off):
        while self.base < off and self.queue:
            head = self.queue[0]
            n = min(len(head), off - self.base)
            if n == len(head):
                self.queue.pop(0)
            else:
                self.queue[0] = head[n:]
            self.base += n
        if not self.worker.reading and not self.ending and self.sent - self.base < HIGH:
            self.worker.reading = True
            self.worker.update()
    def done(self):
        if self.ending and self.peer_ended and self.peer_got_end:
            self.end(False)
    def end(self, reset):
        sessions.pop(self.id, None)
        if self.up:
            if reset and self.ready:
                self.up.send(b"X")
            self.up.sock.finish()
        if reset:
            # a plain close (FIN), as sshd closes a forwarded connection whose other end failed:
            # a worker dialling before the interchange listens sees the connection end, not reset
            self.worker.close()
        else:
            self.worker.finish()
    # worker socket events (and the upstream's Sock calls up_* through Upstream)
    def data(self, _s, view):
        data = bytes(view)  # kept until the sidecar acknowledges it
        self.queue.append(data)
        self.sent += len(data)
        if self.up and self.ready:
            send_data(self.up, data)
        if self.sent - self.base >= HIGH:
            self.worker.reading = False
            self.worker.update()
    def eof(self, _s):
        self.worker.reading = False
        self.worker.update()
        self.ending = True
        if self.up and self.ready:
            self.up.send(b"E")
        self.done()
    def lost(self, _s):
        if self.up and self.ready:
            self.up.send(b"X")
        self.end(True)

class Listener(object):
    def __init__(self, s):
        self.sock = Sock(s, self)
    def ready_accept(self):
        while True:
            try:
                c, _ = self.sock.s.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Session(c)

bind_failed = bye
${BIND_PY}
listener = Listener(srv)
sys.stdout.write("LISTEN " + lh + " " + str(srv.getsockname()[1]) + "\n")
sys.stdout.flush()
# from here on nothing is written to the exec channel: it dies with the SSH connection
devnull = os.open(os.devnull, os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(devnull, fd)
log("listening on %s:%d, upstream 127.0.0.1:%d" % (lh, srv.getsockname()[1], up_port))
control.start()
while True:
    now = time.time()
    soon = any(s.ack_due is not None for s in sessions.values())
    for key, ev in sel.select(ACK_DELAY if soon else 0.25):
        h = key.data
        if h.closed:
            continue  # closed by an earlier event of this batch
        try:
            if h is listener.sock:
                listener.ready_accept()
            else:
                h.ready(ev)
        except Exception:
            # one connection's trouble must not end the others: log it, drop that connection
            log("error: %s" % traceback.format_exc())
            owner = h.owner
            if isinstance(owner, Upstream):
                owner.fail("error")
            elif isinstance(owner, Session):
                owner.end(True)
    now = time.time()
    up = ctl.get("up")
    if up is not None and not up.up and now - up.started > 10:
        up.fail("no handshake in 10 s")
    for s in list(sessions.values()):
        if s.ack_due is not None and now >= s.ack_due:
            s.ack()
        if s.up is not None and not s.up.up and now - s.up.started > 10:
            s.up.fail("no handshake in 10 s")
        if s.up is not None and not s.up.sock.reading and len(s.worker.out) < HIGH // 2:
            s.up.sock.reading = True
            s.up.sock.update()
        if s.up is None and s.id in sessions:
            if s.cut_at is not None and now - s.cut_at > resume_s:
                log("conn %d: not resumed within %d s; closed" % (s.id, resume_s))
                s.end(True)
            else:
                s.try_attach()
    ready = ctl.get("ready")
    if ready is not None:
        if now - ctl["rx_at"] > 3 * ping_s:
            log("control: no answer in %.0f s; the link is down" % (3 * ping_s))
            link_down()
        elif now - ctl["ping_at"] >= ping_s:
            ctl["ping_at"] = now
            ready.send(b"P")
        ctl["ok_at"] = now
    elif ctl.get("up") is None and now >= ctl["next_try"]:
        if now - ctl["ok_at"] > resume_s:
            log("no sidecar for %d s; exiting" % resume_s)
            bye(0)
        control.start()
`;

/** The state directory of relays on the pool (one subdirectory per relay, removed when it exits). */
export const RELAY_STATE_ROOT = "$HOME/.parsl-sidecar/relays";

export interface DurableRelayArgs {
  python: string;
  listenHost: string;
  listenPort: number;
  bindWaitS: number;
  upstreamPort: number;
  resumeS: number;
  pingS: number;
  relayId: string;
}

/** Command that starts the durable relay (it reads its secret from stdin). */
export function durableRelayCommand(a: DurableRelayArgs): string {
  const args = [
    shellQuote(a.listenHost),
    a.listenPort,
    a.bindWaitS,
    a.upstreamPort,
    `"${RELAY_STATE_ROOT}"`,
    a.resumeS,
    a.pingS,
    shellQuote(a.relayId),
  ].join(" ");
  return `umask 077; mkdir -p "${RELAY_STATE_ROOT}" && exec ${a.python} -u -c ${shellQuote(DURABLE_RELAY_PY)} ${args}`;
}

/** Command that tells a running relay the forwarded port moved (it reads the file at its next connect). */
export function relayPortCommand(relayId: string, port: number): string {
  const dir = `"${RELAY_STATE_ROOT}"/${shellQuote(relayId)}`;
  return `[ -d ${dir} ] || { echo "NORELAY"; exit 0; }; umask 077; printf '%d\\n' ${port} > ${dir}/port.tmp && mv ${dir}/port.tmp ${dir}/port && echo "PORT ${port}"`;
}

/**
 * Command that ends a relay that did not come back (its process group, only if the group leader's
 * command line names this relay), and prints `KILLED <pgid>` when it did.
 */
export function killRelayCommand(relayId: string, pgid: number): string {
  return `if [ -d /proc/${pgid} ] && tr '\\0' ' ' < /proc/${pgid}/cmdline 2>/dev/null | grep -q -- ${shellQuote(relayId)}; then kill -KILL -${pgid} 2>/dev/null && echo "KILLED ${pgid}"; fi; rm -rf "${RELAY_STATE_ROOT}"/${shellQuote(relayId)}; true`;
}

/** The relay's program, for tests that check it compiles. */
export const durableRelaySource = DURABLE_RELAY_PY;
