# The head-node relays of reverse tunnels (docs/tunnels.md): the sidecar starts one over exec as
# `PYTHON -u -c PROGRAM MODE ARGS...` (src/tunnels/relay-commands.ts). Two modes in one file, as
# both bind their listener alike (bind_listener) and one program cannot include another:
#
#   plain LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT BIND_WAIT_S
#       forwards every connection to TARGET (a thread pair each) and exits when stdin closes
#       (its exec channel: the SSH connection or the sidecar is gone).
#   durable LISTEN_HOST LISTEN_PORT BIND_WAIT_S UPSTREAM_PORT STATE_ROOT RESUME_S PING_S RELAY_ID
#       stdin: one line, the secret in hex. Carries each worker connection to the sidecar through
#       the forwarded port 127.0.0.1:UPSTREAM_PORT, framed and numbered (src/tunnels/
#       durable-frames.ts, handshake in durable-hub.ts), and keeps the workers' connections open
#       while the SSH connection is down, resuming each one when the link is back. It lives on
#       when its exec channel closes; it exits when the sidecar says so (`S`), on TERM, or after
#       RESUME_S without the sidecar. Its state is STATE_ROOT/RELAY_ID (`port`: the forwarded port
#       to dial, which the sidecar rewrites when it moves; `relay.log`), removed when it exits.
#
# Both print `LISTEN host port` once listening, or `ERROR bind host:port: why` and exit 3 when the
# port stayed held for BIND_WAIT_S seconds; a durable relay prints nothing more. reclaim.sh knows a
# plain relay by that `LISTEN %s %d` format on its command line (this program's text).
# Python: 3.4+ (standard library only; the durable relay is one thread, on selectors)
import binascii
import errno
import hashlib
import hmac
import os
import selectors
import shutil
import signal
import socket
import struct
import sys
import threading
import time
import traceback


def say(s):
    sys.stdout.write(s + "\n")
    sys.stdout.flush()


def bind_listener(lh, lp, wait, failed):
    """A socket listening on (lh, lp), retrying for `wait` s while the port is still held (by the
    relay a dropped connection left); else it says `ERROR bind ...` and calls failed(3)."""
    srv = socket.socket(socket.AF_INET6 if ":" in lh else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.time() + wait
    while True:
        try:
            srv.bind((lh, lp))
            break
        except OSError as e:
            if time.time() >= deadline:
                say("ERROR bind %s:%d: %s" % (lh, lp, e))
                failed(3)
            time.sleep(0.1)
    srv.listen(128)
    return srv


# ---- plain: one thread pair per connection ----


def exit_on_eof():
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os._exit(0)


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


def handle(c, th, tp):
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


def plain(args):
    lh, lp, th, tp, wait = args[0], int(args[1]), args[2], int(args[3]), float(args[4])
    srv = bind_listener(lh, lp, wait, sys.exit)
    say("LISTEN %s %d" % (lh, srv.getsockname()[1]))
    threading.Thread(target=exit_on_eof, daemon=True).start()
    while True:
        try:
            c, _ = srv.accept()
        except OSError:
            continue
        threading.Thread(target=handle, args=(c, th, tp), daemon=True).start()


# ---- durable: one thread, every socket non-blocking on one selector ----

HELLO = "PSC-DURABLE/1"
MAX_DATA, HIGH, ACK_BYTES, ACK_DELAY = 262144, 8 << 20, 262144, 0.02
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE
RBUF = bytearray(262144)
RVIEW = memoryview(RBUF)
# set by durable() from its arguments, read by what follows
secret, rid, state, up_port, logf, sel = b"", "", "", 0, None, None


def write_port(p):
    tmp = os.path.join(state, "port.tmp")
    with open(tmp, "w") as f:
        f.write("%d\n" % p)
    os.rename(tmp, os.path.join(state, "port"))


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


class Sock(object):
    """A non-blocking socket with an output buffer; events go to its owner."""

    def __init__(self, s, owner, connecting=False):
        s.setblocking(False)
        self.s, self.owner, self.out = s, owner, bytearray()
        self.reading, self.connecting = True, connecting
        self.closed, self.ev, self.shut_after, self.close_after = False, 0, False, False
        self.update()

    def update(self):
        if self.closed:
            return
        ev = W if self.connecting or self.out else 0
        ev |= R if self.reading and not self.connecting else 0
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
        """Send from the buffer without copying it: bytes sent, 0 if the socket is full, -1 if it
        failed."""
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
    """Data frames of b: each a header and its part, put in the buffer without joining them
    first."""
    for i in range(0, len(b), MAX_DATA):
        part = b[i : i + MAX_DATA]
        up.send(struct.pack(">BI", 0x44, len(part)), part)


class Upstream(object):
    """One connection to the sidecar through the forwarded port: handshake, then frames."""

    def __init__(self, owner, kind, conn_id, mode, received):
        self.owner, self.kind, self.conn_id = owner, kind, conn_id
        self.up, self.line, self.frames = False, b"", Frames()
        self.nonce, self.started = nonce(), time.time()
        hello = (HELLO, rid, kind, conn_id, mode, received, self.nonce)
        self.hello = "%s %s %s %s %s %d %s" % hello

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
        reply, rest = self.line[:nl].decode("latin1"), self.line[nl + 1 :]
        self.line = b""
        w = reply.split(" ")
        if (
            w[0] in ("OK", "GONE")
            and len(w) >= 3
            and hmac.compare_digest(w[-1], mac(self.hello + "|" + " ".join(w[:-1])))
        ):
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
ctl = {}  # the control channel: set up by durable()
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
            self.up = Upstream(
                self, "data", self.id, "new" if self.new else "resume", self.received
            )
            self.up.start()

    def cut(self):
        self.ready = False
        if self.cut_at is None:
            self.cut_at = time.time()

    # upstream events
    def up_ready(self, up, peer_received):
        if peer_received < self.base or peer_received > self.sent:
            log(
                "conn %d: cannot resume at %d (have %d..%d)"
                % (self.id, peer_received, self.base, self.sent)
            )
            return self.end(True)
        if not self.new:
            log(
                "conn %d resumed at %d, %d bytes sent again"
                % (self.id, peer_received, self.sent - peer_received)
            )
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
        c.send(
            struct.pack(
                ">BIII", 0x4B, self.id, self.received // 4294967296, self.received % 4294967296
            )
        )
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


def durable(args):
    global secret, rid, state, up_port, logf, sel
    lh, lp, wait, up_port = args[0], int(args[1]), float(args[2]), int(args[3])
    root, resume_s, ping_s, rid = args[4], float(args[5]), float(args[6]), args[7]
    secret = binascii.unhexlify(sys.stdin.readline().strip())
    sel = selectors.DefaultSelector()
    state = os.path.join(root, rid)
    os.makedirs(state, 0o700)
    write_port(up_port)
    logf = open(os.path.join(state, "relay.log"), "a")
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
    ctl.update(up=None, ok_at=time.time(), rx_at=0.0, ping_at=0.0, next_try=0.0)
    srv = bind_listener(lh, lp, wait, bye)
    listener = Listener(srv)
    say("LISTEN %s %d" % (lh, srv.getsockname()[1]))
    # from here on nothing is written to the exec channel: it dies with the SSH connection
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    log("listening on %s:%d, upstream 127.0.0.1:%d" % (lh, srv.getsockname()[1], up_port))
    control.start()
    serve(listener, resume_s, ping_s)


def serve(listener, resume_s, ping_s):
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


{"plain": plain, "durable": durable}[sys.argv[1]](sys.argv[2:])
