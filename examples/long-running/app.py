"""A small web app standing in for JupyterLab on a pool's head node.

Listens on 127.0.0.1 (port 0: any free one), writes the port to ``--port-file``, and serves one
page until it is stopped. Only the standard library is used, so any python3 on the pool runs it.
"""

from __future__ import annotations

import argparse
import http.server
import os
import socket
import time

__all__ = ["main"]


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a small page naming the host, the pid and the job."""

    started = time.time()

    def do_GET(self) -> None:
        """Serve the page."""
        body = (
            "<!doctype html><title>long-running app</title>"
            f"<h1>Hello from {socket.gethostname()}</h1>"
            f"<p>pid {os.getpid()}, job {os.environ.get('PARSL_SIDECAR_JOB', '-')}, "
            f"up {time.time() - self.started:.0f} s</p>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: one line per request on stderr is enough."""
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    """Serve until killed."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = f"{args.port_file}.tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
