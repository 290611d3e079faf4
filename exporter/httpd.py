"""A minimal, bounded HTTP server for ``GET /metrics``, on threads of its own.

Why not prometheus_client's ``start_http_server``: it is a ThreadingHTTPServer that starts a thread
for every connection without a limit and reads request lines and headers with no deadline, so a
client that connects and trickles bytes (or a flood of them) holds threads and memory for as long
as it likes. Here:

- one accept thread blocks in ``accept()`` (no periodic wake-up: an idle exporter costs nothing
  for its HTTP side);
- at most ``MAX_CLIENTS`` requests are served at once, each on its own short-lived thread; a
  connection beyond that is closed at once;
- a request must arrive whole (at most ``MAX_REQUEST_BYTES`` of head) and its answer be taken
  within ``DEADLINE_S``, whatever the client does; then the connection is closed (HTTP/1.0, one
  request per connection, as Prometheus scrapes anyway).

The worker's main loop (heartbeat, sockets) never waits for any of this: the only thing shared
is the state's lock, which a scrape holds while it copies a few dicts.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

MAX_CLIENTS = 8
MAX_REQUEST_BYTES = 8192
DEADLINE_S = 5.0
log = logging.getLogger("exporter.httpd")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_INDEX = b"<html><body><a href=\"/metrics\">/metrics</a></body></html>\n"


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + body


def route(head: bytes, render: Callable[[], bytes]) -> bytes:
    """The answer to one request head (pure: tests call it without a socket)."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3 or not line[2].startswith(b"HTTP/"):
        return _response("400 Bad Request", b"bad request\n")
    method, target = line[0], line[1].split(b"?", 1)[0]
    if method not in (b"GET", b"HEAD"):
        return _response("405 Method Not Allowed", b"only GET\n")
    if target == b"/metrics":
        answer = _response("200 OK", render(), CONTENT_TYPE)
    elif target == b"/":
        answer = _response("200 OK", _INDEX, "text/html; charset=utf-8")
    else:
        return _response("404 Not Found", b"not found: try /metrics\n")
    return answer.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n" if method == b"HEAD" else answer


def read_head(conn: socket.socket, deadline: float) -> bytes | None:
    """The request head (up to the blank line), or None if it is too big or late."""
    data = b""
    while b"\r\n\r\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or len(data) > MAX_REQUEST_BYTES:
            return None
        conn.settimeout(left)
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data


class MetricsServer:
    """Serves ``render()`` at /metrics on ``(host, port)``; ``start()`` binds (raises OSError)."""

    def __init__(self, host: str, port: int, render: Callable[[], bytes]) -> None:
        self.host, self.port, self.render = host, port, render
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._sock: socket.socket | None = None
        self.refused = 0  # connections closed at once: MAX_CLIENTS were being served
        self.served = 0
        self.failed = 0  # requests that timed out, were too big or whose client went away

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._sock = sock
        threading.Thread(target=self._accept_loop, name="exporter-http", daemon=True).start()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() on Linux
            except OSError:
                pass
            sock.close()

    def _accept_loop(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            if not self._slots.acquire(blocking=False):
                self.refused += 1
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), name="exporter-scrape", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        deadline = time.monotonic() + DEADLINE_S
        try:
            head = read_head(conn, deadline)
            if head is None:
                self.failed += 1
                return
            answer = route(head, self.render)
            conn.settimeout(max(0.01, deadline - time.monotonic()))
            conn.sendall(answer)
            self.served += 1
        except OSError:
            self.failed += 1  # timed out, reset by the client
        except Exception:  # a bug in rendering must not kill the server thread silently
            self.failed += 1
            log.exception("rendering /metrics failed")
        finally:
            conn.close()
            self._slots.release()
