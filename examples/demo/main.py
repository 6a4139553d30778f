"""The parsl-sidecar demo: a small Parsl workflow run through ``parsl-sidecar run``.

``npm run demo`` runs ``parsl-sidecar run --executors executors.json -- python main.py``.
The sidecar completes executors.json (the embedded default pool, ``local``: this machine),
:func:`parsl_sidecar.parsl_config` builds the Parsl Config from it, and ``stage_app`` /
``log_app`` stage a file in before an app and its results out after it, through the sidecar.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

import parsl
from parsl.app.app import bash_app, python_app

import parsl_sidecar

CWD = os.getcwd()
WORK = tempfile.mkdtemp(prefix="parsl-sidecar-demo-work-")


@python_app
def square(x: int) -> int:
    return x * x


@python_app
def total(*values: int) -> int:
    return sum(values)


@parsl_sidecar.log_app
@parsl_sidecar.stage_app("local")
@bash_app
def count_words(
    inputs_dict: dict = {},  # noqa: B006 - Parsl passes defaulted parameters as keywords
    outputs_dict: dict = {},  # noqa: B006
    stdout: str = parsl.AUTO_LOGNAME,
    stderr: str = parsl.AUTO_LOGNAME,
) -> str:
    src = inputs_dict["words"]["worker_path"]
    out = outputs_dict["counts"]["worker_path"]
    return f"mkdir -p {out} && wc -l < {src} > {out}/lines.txt && sort {src} > {out}/sorted.txt"


def main() -> int:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    app_log = logging.getLogger("parsl_sidecar")
    app_log.addHandler(handler)
    app_log.setLevel(logging.INFO)
    print(f"job {os.environ.get('PARSL_SIDECAR_JOB')}")
    with parsl.load(parsl_sidecar.parsl_config(run_dir=os.path.join(WORK, "runinfo"))):
        result = total(*[square(i) for i in range(10)]).result()
        staged = count_words(
            inputs_dict={
                "words": {
                    "type": "file",
                    "global_path": "file://{cwd}/data/words.txt",
                    "worker_path": f"{WORK}/in/words.txt",
                }
            },
            outputs_dict={
                "counts": {
                    "type": "directory",
                    "global_path": "pw://{cwd}/results",
                    "worker_path": f"{WORK}/out",
                }
            },
        )
        staged.result()
    parsl.clear()
    with open(os.path.join(CWD, "results", "lines.txt")) as f:
        lines = int(f.read().strip())
    with open(os.path.join(CWD, "results", "sorted.txt")) as f:
        first = f.readline().strip()
    print(f"sum of squares 0..9 = {result}")
    print(f"staged out to {CWD}/results: {lines} lines, first sorted word {first!r}")
    ok = result == 285 and lines == 4 and first == "alpha"
    print("demo OK" if ok else "demo FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
