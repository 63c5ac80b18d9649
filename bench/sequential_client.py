"""N keep-alive GET requests, one after another on one connection; exit 1 on any non-200.

python bench/sequential_client.py PORT N

The load for bench/instructions.sh: sequential, so the proxy does the same work for each
request whatever the machine's speed.
"""

from __future__ import annotations

import socket
import sys

REQUEST = b"GET /items HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("a response without Content-Length")


def main(port: int, count: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        pending = b""
        for _ in range(count):
            sock.sendall(REQUEST)
            while (end := pending.find(b"\r\n\r\n")) < 0:
                pending += sock.recv(65536)
            total = end + 4 + _content_length(pending[:end])
            while len(pending) < total:
                pending += sock.recv(65536)
            if not pending.startswith(b"HTTP/1.1 200 "):
                print(pending[:200].decode("latin-1"), file=sys.stderr)
                return 1
            pending = pending[total:]
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2])))
