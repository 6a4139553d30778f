# The end-to-end check of a reverse tunnel (docs/tunnels.md, "End-to-end check"), run on the head
# node as `PYTHON -c PROGRAM HOST PORT TOKEN [direct]` (src/tunnels/pool-commands.ts): connects to
# HOST:PORT, where workers dial, sends `PSC-CHECK TOKEN`, and expects the sidecar's own answer
# `PSC-OK TOKEN` (the service behind the tunnel never sees the probe). With `direct` (the SSH
# master connects to the service itself, so the sidecar cannot answer), it sends nothing: it
# prints `SRC <its port>`, by which the sidecar finds the connection in the master's log, and
# holds the connection a moment. Prints `RESULT ok <ms>` or `RESULT <why not>`, and exits 0
# either way. Without python, probe-tcp.bash.
# Python: 3.4+
import socket
import sys
import time

h, p, tok = sys.argv[1], int(sys.argv[2]), sys.argv[3]
direct = len(sys.argv) > 4 and sys.argv[4] == "direct"
t0 = time.time()
try:
    s = socket.create_connection((h, p), timeout=10)
    if direct:
        print("SRC %d" % s.getsockname()[1])
        sys.stdout.flush()
        # long enough for the master to hear of it; a refused connect here closes it sooner
        s.settimeout(0.3)
        try:
            s.recv(1)
        except socket.timeout:
            pass
        s.close()
        print("RESULT ok %d" % int((time.time() - t0) * 1000))
        sys.exit(0)
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
