"""A fault-injecting, recording TCP proxy in front of the emulator's nginx.

Each request is relayed to nginx with ``Connection: close``; requests whose path
starts with the next queued fault's ``path`` prefix (and whose method matches its
``method``, when given) take that fault instead:

* ``Fault("503")`` — answer 503 without contacting nginx;
* ``Fault("reset", after=n)`` — relay *n* bytes of the response, then reset the connection (RST);
* ``Fault("stall", after=n, seconds=s)`` — relay *n* bytes, then send nothing for *s* seconds and close;
* ``Fault("truncate", after=n)`` — relay the answer without its ``Content-Length``, cut after *n* body
  bytes and closed cleanly: a short body the client cannot tell from a whole one by its framing;
* ``Fault("nolength")`` — relay the whole answer without its ``Content-Length`` (close-delimited);
* ``Fault("html")`` — answer ``200 OK`` with an HTML error page, as overloaded front ends do.

Every request is recorded in :attr:`FaultProxy.requests` (method, path, request headers,
status, body bytes relayed, start and end times), so tests can see what clients sent
(``Authorization``, ``Range``) and what they were sent.  ``bind`` lets a second proxy
listen on another address (another "host") in front of the same nginx.  ``rate`` paces
every connection to that many bytes per second, evenly (one relay chunk of burst): a
per-connection cap like a network path's, unlike nginx's ``limit_rate``, which lets each
request send its first second of data at once and so rewards many short requests.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

__all__ = ["Fault", "FaultProxy", "Relayed", "RELAY_CHUNK"]

#: bytes read from nginx and sent on at a time: at most this much is in flight when a reset cuts a transfer
RELAY_CHUNK = 65536

HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>503 Service Temporarily Unavailable</title></head>\n"
             b"<body><h1>Service Temporarily Unavailable</h1><p>Please try again later.</p></body></html>\n")


@dataclass(frozen=True)
class Fault:
    kind: str  # "503" | "reset" | "stall" | "truncate" | "nolength" | "html"
    after: int = 0
    seconds: float = 0.0
    path: str = "/dataPortal/"
    method: str = ""  # "" matches any method


@dataclass
class Relayed:
    """One request the proxy handled."""

    method: str
    path: str
    headers: dict  # request headers, lower-case names
    status: int = 0
    body_bytes: int = 0  # response body bytes sent to the client
    fault: str = ""  # the fault that really acted on this request
    start: float = 0.0
    end: float = 0.0
    response_headers: dict = field(default_factory=dict)


class FaultProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1", bind: str | None = None, rate: float = 0):
        self.upstream = (host, upstream_port)
        self.rate = rate
        self.faults: deque[Fault] = deque()
        self.applied: list[Fault] = []
        self.requests: list[Relayed] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server((bind or host, 0), Handler)
        self.host, self.port = self.server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def pending(self) -> int:
        with self._lock:
            return len(self.faults)

    def clear(self) -> None:
        """Forget queued faults and recorded requests."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            if self.faults and path.startswith(self.faults[0].path) and self.faults[0].method in ("", method):
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
        words = lines[0].split(b" ")
        method = words[0].decode("latin-1")
        path = words[1].decode("latin-1") if len(words) > 1 else "/"
        length = 0
        kept = [lines[0]]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            headers[name.decode("latin-1")] = value.strip().decode("latin-1")
            if name == b"content-length":
                length = int(value)
            if name not in (b"connection", b"keep-alive"):
                kept.append(line)
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                break
            body += chunk
        record = Relayed(method, path, headers, start=time.monotonic())
        with self._lock:
            self.requests.append(record)
        fault = self._next_fault(method, path)
        if fault and fault.kind in ("503", "html", "nolength"):
            record.fault = fault.kind  # (a reset, stall or truncation is recorded when it really cuts)
        try:
            if fault and fault.kind in ("503", "html"):
                self._answer(client, record, fault.kind)
                return
            request = b"\r\n".join(kept + [b"Connection: close"]) + b"\r\n\r\n" + body
            with socket.create_connection(self.upstream) as up:
                up.sendall(request)
                self._relay(up, client, record, fault)
        except OSError:
            pass  # the client went away
        finally:
            record.end = time.monotonic()
            try:
                client.close()
            except OSError:
                pass

    @staticmethod
    def _answer(client: socket.socket, record: Relayed, kind: str) -> None:
        if kind == "503":
            record.status = 503
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 0\r\n"
                           b"Connection: close\r\n\r\n")
            return
        record.status = 200
        body = b"" if record.method == "HEAD" else HTML_PAGE
        client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
                       + str(len(HTML_PAGE)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        record.body_bytes = len(body)

    def _relay(self, up: socket.socket, client: socket.socket, record: Relayed, fault: Fault | None) -> None:
        """nginx's answer to the client, with *fault* applied; counts the body bytes the client was sent."""
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = up.recv(RELAY_CHUNK)
            if not chunk:
                client.sendall(head)
                return
            head += chunk
        pace = self._pacer()
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = lines[0].split(b" ")
        record.status = int(status[1]) if len(status) > 1 and status[1].isdigit() else 0
        record.response_headers = {k.strip().lower().decode("latin-1"): v.strip().decode("latin-1")
                                   for k, _, v in (line.partition(b":") for line in lines[1:])}
        if fault and fault.kind in ("truncate", "nolength"):
            lines = [line for line in lines if not line.lower().startswith(b"content-length:")]
        header = b"\r\n".join(lines) + b"\r\n\r\n"
        if fault and fault.kind in ("truncate", "nolength"):
            client.sendall(header)
            self._pass_body(up, client, record, rest, fault.after if fault.kind == "truncate" else None, pace)
            return
        # reset and stall count 'after' over the whole answer, header included
        stream = header + rest
        sent = 0
        while True:
            if fault and sent + len(stream) >= fault.after:
                piece = stream[: max(fault.after - sent, 0)]
                record.fault = fault.kind
                client.sendall(piece)
                record.body_bytes += max(0, sent + len(piece) - len(header)) - max(0, sent - len(header))
                if fault.kind == "stall":
                    time.sleep(fault.seconds)
                else:  # reset: SO_LINGER 0 makes close() send RST
                    time.sleep(0.3)  # let the client read what was sent: an RST discards unread data
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            pace(len(stream))
            client.sendall(stream)
            record.body_bytes += max(0, sent + len(stream) - len(header)) - max(0, sent - len(header))
            sent += len(stream)
            stream = up.recv(RELAY_CHUNK)
            if not stream:
                return

    def _pacer(self):
        """pace(n): wait until n more bytes fit this connection's rate (no wait without a rate)."""
        if not self.rate:
            return lambda n: None
        start, sent = time.monotonic(), [0]

        def pace(n: int) -> None:
            due = start + sent[0] / self.rate - time.monotonic()
            if due > 0:
                time.sleep(due)
            sent[0] += n
        return pace

    @staticmethod
    def _pass_body(up, client, record: Relayed, first: bytes, limit: int | None, pace) -> None:
        """The body after the header: *first* (what came with the header, maybe nothing), then the rest."""
        data = first
        while True:
            if data:
                pace(len(data))
                if limit is not None and record.body_bytes + len(data) >= limit:
                    client.sendall(data[: limit - record.body_bytes])
                    record.body_bytes, record.fault = limit, "truncate"
                    client.shutdown(socket.SHUT_WR)  # a clean end (FIN): nothing in the framing says it is short
                    return
                client.sendall(data)
                record.body_bytes += len(data)
            data = up.recv(RELAY_CHUNK)
            if not data:
                return
