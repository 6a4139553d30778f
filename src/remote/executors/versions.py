# Python and Parsl versions of the interpreter that runs it: one line, `PSC-VERSIONS {json}`,
# with python, executable, parsl (null when Parsl cannot be imported) and parslError (why).
# Run here (src/executors/versions.ts) and on pools after WORKER_INIT (preflight.sh `python`);
# it must answer on an old interpreter too, so that preflight can name the version it found.
# Python: 2.7+, 3.4+
import json
import sys

out = {
    "python": "%d.%d.%d" % sys.version_info[:3],
    "executable": sys.executable,
    "parsl": None,
}
try:
    import parsl.version

    out["parsl"] = parsl.version.VERSION
except Exception as e:
    out["parslError"] = "%s: %s" % (type(e).__name__, e)
print("PSC-VERSIONS " + json.dumps(out))
