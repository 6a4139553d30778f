# Whether a worker on this pool can connect to the interchange through the tunnel: tries each of
# ADDRESSES (comma-separated) at PORT, 10 s each, and prints `PSC-TUNNEL ok` at the first that
# accepts, else `PSC-TUNNEL <address>: <error>; ...`. Run by preflight.sh `dial`.
# Usage: python dial.py ADDRESSES PORT
# Python: 2.7+, 3.4+
import socket
import sys

err = []
for a in sys.argv[1].split(","):
    try:
        socket.create_connection((a, int(sys.argv[2])), 10).close()
        print("PSC-TUNNEL ok")
        break
    except Exception as e:
        err.append("%s: %s" % (a, e))
else:
    print("PSC-TUNNEL " + "; ".join(err))
