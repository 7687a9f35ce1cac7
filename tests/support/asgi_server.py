"""A real ASGI server (uvicorn) on loopback, in a background thread, for tests that send real HTTP.

``with AsgiServer(app) as server: httpx.post(f"{server.url}/healthz")``. The listening socket is
bound before the thread starts (port 0: the system picks a free one), so there is no window in
which another process could take the port, and ``url`` is known at once.

Starting and stopping uvicorn costs about a tenth of a second, so a module of tests may share one
server and give each test an app of its own: ``server.app = create_app(...)`` (or ``with
server.serving(app):``). Each request goes to whatever app is set when it arrives.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Switch:
    """The ASGI app uvicorn runs: it hands each request to the app currently set."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.app is None:
            raise RuntimeError("no app is set on this test server")
        await self.app(scope, receive, send)


class AsgiServer:
    def __init__(self, app: Any = None, *, start_timeout: float = 10.0) -> None:
        import uvicorn

        self._switch = _Switch(app)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        config = uvicorn.Config(self._switch, lifespan="off", log_level="warning",
                                access_log=False, timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)
        self._start_timeout = start_timeout

    def __enter__(self) -> AsgiServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started listening")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start within {self._start_timeout} s")
            time.sleep(0.005)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    @property
    def app(self) -> Any:
        return self._switch.app

    @app.setter
    def app(self, app: Any) -> None:
        self._switch.app = app

    @contextmanager
    def serving(self, app: Any) -> Iterator[AsgiServer]:
        previous, self.app = self.app, app
        try:
            yield self
        finally:
            self.app = previous

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"
