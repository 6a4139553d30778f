"""The floor for bench/rpc.ts: a raw pyzmq echo server (REP, or ROUTER for pipelined calls).

Usage: rpc_floor_server.py rep|router ENDPOINT. Echoes every message unchanged until killed.
"""

from __future__ import annotations

import os
import signal
import sys

import zmq


def main() -> None:
    kind, endpoint = sys.argv[1], sys.argv[2]
    # exit at once: a clean sys.exit would wait in zmq's context teardown for the open socket
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REP if kind == "rep" else zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.bind(endpoint)
    print("ready", flush=True)
    recv, send = sock.recv_multipart, sock.send_multipart
    while True:
        send(recv())


if __name__ == "__main__":
    main()
