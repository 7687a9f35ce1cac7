"""A real HTTP server on loopback with scripted routes, for feeds and email APIs.

``server.route("GET", "/feed.xml", handler)`` where ``handler(request) -> Response``;
``server.requests`` records every request seen.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[[Request], Response]


class HttpServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        """Listen on ``host`` (another loopback address, 127.0.0.2, stands for another host)."""
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Request] = []
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                request = Request(self.command, self.path,
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(request)
                handler = server.routes.get((self.command, path))
                response = handler(request) if handler else Response(404, b"not found")
                if response.delay:
                    time.sleep(response.delay)
                try:
                    self.send_response(response.status)
                    headers = {"Content-Length": str(len(response.body)), **response.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_HEAD = _serve

            def handle(self) -> None:
                try:
                    super().handle()
                except (ConnectionResetError, BrokenPipeError):
                    pass  # a client that hung up (a timeout test, a closed pool)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), _Handler)
        self._server.daemon_threads = True
        # A short poll interval: shutdown() otherwise waits up to half a second per server.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer GET ``path`` with a redirect to ``location``."""
        self.route("GET", path, lambda _request: Response(status, b"", {"Location": location}))

    def serve_bytes(self, path: str, body: bytes, *, content_type: str = "application/rss+xml",
                    etag: str = "", last_modified: str = "", gzip_encoding: bool = False,
                    delay: float = 0.0) -> None:
        """Serve a static body with validators; answer 304 to a matching conditional GET."""

        def handler(request: Request) -> Response:
            if etag and request.header("if-none-match") == etag:
                return Response(304, headers={"ETag": etag})
            if last_modified and request.header("if-modified-since") == last_modified:
                return Response(304, headers={"Last-Modified": last_modified})
            headers = {"Content-Type": content_type}
            if etag:
                headers["ETag"] = etag
            if last_modified:
                headers["Last-Modified"] = last_modified
            payload = body
            if gzip_encoding:
                headers["Content-Encoding"] = "gzip"
                payload = body if body[:2] == b"\x1f\x8b" else gzip.compress(body)
            return Response(200, payload, headers, delay=delay)

        self.route("GET", path, handler)
