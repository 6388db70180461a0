"""A fault-injecting TCP proxy in front of the emulator's nginx.

Each request is relayed to nginx with ``Connection: close``; requests whose path
starts with a fault's ``path`` prefix take the next queued fault instead:

* ``Fault("503")`` — answer 503 without contacting nginx;
* ``Fault("reset", after=n)`` — relay *n* bytes of the response, then reset the connection (RST);
* ``Fault("stall", after=n, seconds=s)`` — relay *n* bytes, then send nothing for *s* seconds and close.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

__all__ = ["Fault", "FaultProxy"]


@dataclass(frozen=True)
class Fault:
    kind: str  # "503" | "reset" | "stall"
    after: int = 0
    seconds: float = 0.0
    path: str = "/dataPortal/"


class FaultProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1"):
        self.upstream = (host, upstream_port)
        self.faults: deque[Fault] = deque()
        self.applied: list[Fault] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def pending(self) -> int:
        with self._lock:
            return len(self.faults)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            if self.faults and path.startswith(self.faults[0].path):
                fault = self.faults.popleft()
                self.applied.append(fault)
                return fault
        return None

    def _handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        head, _, body = head.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1].decode("latin-1") if len(lines[0].split(b" ")) > 1 else "/"
        length = 0
        kept = [lines[0]]
        for line in lines[1:]:
            name = line.split(b":", 1)[0].strip().lower()
            if name == b"content-length":
                length = int(line.split(b":", 1)[1])
            if name not in (b"connection", b"keep-alive"):
                kept.append(line)
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                break
            body += chunk
        fault = self._next_fault(path)
        if fault and fault.kind == "503":
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 0\r\n"
                           b"Connection: close\r\n\r\n")
            client.close()
            return
        request = b"\r\n".join(kept + [b"Connection: close"]) + b"\r\n\r\n" + body
        with socket.create_connection(self.upstream) as up:
            up.sendall(request)
            sent = 0
            while True:
                chunk = up.recv(65536)
                if not chunk:
                    break
                if fault and sent + len(chunk) >= fault.after:
                    client.sendall(chunk[: max(fault.after - sent, 0)])
                    if fault.kind == "stall":
                        time.sleep(fault.seconds)
                        client.close()
                    else:  # reset: SO_LINGER 0 makes close() send RST
                        time.sleep(0.3)  # let the client read what was sent: an RST discards unread data
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        client.close()
                    return
                client.sendall(chunk)
                sent += len(chunk)
        client.close()
