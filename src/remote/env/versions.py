# The interpreter's versions as one JSON line (src/env/probe.ts, through env/probe.sh, which runs
# it as `PYTHON -c PROGRAM` with the environment's bin/python):
# {"python": "X.Y.Z", "parsl": "V" or null, "executable": "..."}. Parsl's version comes from its
# dist-info directory on sys.path (fast: no import); importlib.metadata is the fallback.
# Python: 2.7+, 3.4+
import os
import sys

p = None
for d in sys.path:
    try:
        names = os.listdir(d or ".")
    except OSError:
        continue
    for n in names:
        low = n.lower()
        if low.startswith("parsl-") and (low.endswith(".dist-info") or low.endswith(".egg-info")):
            p = n[6:].rsplit(".", 1)[0].split("-")[0]
            break
    if p:
        break
if p is None:
    try:
        import importlib.metadata as m  # novermin (3.8+; older ones take the except)

        p = m.version("parsl")
    except Exception:
        p = None
e = sys.executable.replace("\\", "\\\\").replace('"', '\\"')
q = '"%s"' % p if p else "null"
v = sys.version_info
print('{"python": "%d.%d.%d", "parsl": %s, "executable": "%s"}' % (v[0], v[1], v[2], q, e))
