"""A long-running workflow: start a web app on the pool's head node and reach it from here.

Run it as a job, so that ``parsl-sidecar kill`` stops the app on the pool and closes the tunnel::

    POOL=mycluster parsl-sidecar run --job lab -- python examples/long-running/main.py

It copies ``app.py`` to the pool, starts it there in its own session with the job's marker in
its environment, registers its process group with the job, opens a local forward to it, prints
the URL, and then waits until the job is stopped.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import parsl_sidecar

__all__ = ["main"]

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Start the app on ``$POOL`` (default ``local``) and keep the job alive."""
    job = os.environ.get("PARSL_SIDECAR_JOB")
    if not job:
        print("run me with `parsl-sidecar run -- python main.py`", file=sys.stderr)
        return 2
    target = os.environ.get("POOL", "local")
    client = parsl_sidecar.connect()
    workdir = f"/tmp/parsl-sidecar-example-{job}"
    q = shlex.quote

    def sh(command: str, stdin: str | None = None) -> str:
        params: dict[str, object] = {"target": target, "command": command}
        if stdin is not None:
            params["stdin"] = stdin
        res = client.call("ssh.exec", params, timeout=60)
        if res["exit_code"] != 0:
            raise RuntimeError(f"`{command}` on {target} failed: {res['stderr'].strip()}")
        return str(res["stdout"])

    # 1. the app on the pool, in its own session (so its pid is its process group), marked
    sh(f"mkdir -p {q(workdir)} && cat > {q(workdir)}/app.py", stdin=(HERE / "app.py").read_text())
    start = (
        f"cd {q(workdir)} && PARSL_SIDECAR_JOB={q(job)} setsid python3 -u app.py "
        f"--port-file port > app.log 2>&1 < /dev/null & echo $!"
    )
    pgid = int(sh(start).strip())
    client.call(
        "jobs.register_resource",
        job=job,
        resource={"kind": "remote_group", "target": target, "pgid": pgid, "label": "app"},
    )
    port = ""
    for _ in range(200):
        port = sh(f"cat {q(workdir)}/port 2>/dev/null || true").strip()
        if port:
            break
        time.sleep(0.1)
    if not port:
        raise RuntimeError(f"the app did not start on {target}; see {workdir}/app.log there")

    # 2. a local forward to it, owned by the job (closed when the job ends)
    tunnel = client.call(
        "tunnels.open",
        target=target,
        kind="local",
        remote_host="127.0.0.1",
        remote_port=int(port),
        owner=job,
        timeout=60,
    )
    print(
        f"app running on {target} (pid {pgid}); open http://127.0.0.1:{tunnel['local_port']}/",
        flush=True,
    )
    print(f"stop it with: parsl-sidecar kill {job}", flush=True)

    # 3. a long-running workflow: wait until the job is stopped
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
