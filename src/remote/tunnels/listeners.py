# What listens on a TCP port of the head node (docs/tunnels.md: what sshd really bound for a
# reverse tunnel), run as `PYTHON -c PROGRAM PORT` (src/tunnels/pool-commands.ts): prints
# `LISTENERS addr...`, the local address of every LISTEN socket on PORT in /proc/net/tcp and
# /proc/net/tcp6 (nothing after `LISTENERS` when there is none). Without python, listeners.sh.
# Python: 3.4+
import binascii
import socket
import sys

port = int(sys.argv[1])
out = []
for fn, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
    try:
        lines = open(fn).read().splitlines()[1:]
    except IOError:
        continue
    for line in lines:
        f = line.split()
        a, pt = f[1].split(":")
        if f[3] != "0A" or int(pt, 16) != port:
            continue
        b = binascii.unhexlify(a)
        if v6:
            # four 32-bit words, each in host (little-endian) order
            words = b"".join(b[i : i + 4][::-1] for i in range(0, 16, 4))
            out.append(socket.inet_ntop(socket.AF_INET6, words))
        else:
            out.append(socket.inet_ntoa(b[::-1]))
print("LISTENERS " + " ".join(out))
