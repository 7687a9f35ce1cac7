"""What every fake email-API provider shares: a loopback server, the requests seen, a script.

A provider fake (``FakePostmark``, ``FakeSendgrid``, …) subclasses :class:`FakeApi` and writes
only what is its own: :meth:`FakeApi.handle`, which checks one request against the provider's
documentation and answers as the provider does, and the answers the provider is known for
(``fake.error(...)``, ``fake.rate_limited(...)``). Everything else is here, said one way:

    with FakePostmark() as fake:                 # its own HTTP server on 127.0.0.1
        fake.script(passes(), hang(2.0))         # the first request as usual, the second late
        fake.script(answer(500, {"Message": "down"}, times=2))
        ...
        fake.requests                            # every request to the API path, in order
        fake.url                                 # the base URL to give the transport

Invariants: the script is one queue, one step consumed per request, in the order given; when
it is empty every request is handled as the provider would. A scripted :func:`answer` is sent
without looking at the request (not even its credentials) and accepts nothing. :func:`hang`
handles the request as usual — the provider *did* accept it — and only answers late: that is
what a client timeout looks like from the sender's side. Requests are handled one at a time.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from support.http_server import HttpServer, Request, Response


@dataclass(frozen=True)
class Step:
    """What the fake does with one request: ``response`` None means "as the provider would"."""

    response: Response | None = None
    delay: float = 0.0
    times: int = 1
    reply: Callable[[Request], Response] | None = None     # an answer made from the request


def passes(times: int = 1) -> Step:
    """Handle the next ``times`` requests as the provider would."""
    return Step(times=times)


def answer(status: int, body: Any = b"", headers: dict[str, str] | None = None, *,
           times: int = 1) -> Step:
    """Answer the next ``times`` requests with this, accepting nothing. A ``body`` that is
    not bytes or text is sent as JSON."""
    if isinstance(body, bytes | str):
        payload, content_type = (body.encode() if isinstance(body, str) else body), {}
    else:
        payload, content_type = json.dumps(body).encode(), {"Content-Type": "application/json"}
    return Step(Response(status, payload, {**content_type, **(headers or {})}), times=times)


def echo_credentials(status: int = 401, *, times: int = 1) -> Step:
    """Answer the next ``times`` requests with ``status`` and a JSON body quoting the request's
    ``Authorization`` header and its query string, as some providers' error pages do."""
    def reply(request: Request) -> Response:
        body = {"message": f"not authorised: {request.header('authorization')}",
                "errors": [{"message": f"request {request.path} with "
                                       f"{request.header('authorization')!r}"}]}
        return Response(status, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return Step(reply=reply, times=times)


def hang(seconds: float, *, times: int = 1) -> Step:
    """Handle the next ``times`` requests as usual, then wait ``seconds`` before answering."""
    return Step(delay=seconds, times=times)


class FakeApi:
    """One provider endpoint (``method`` ``path``) on a loopback server of its own."""

    def __init__(self, path: str, *, method: str = "POST") -> None:
        self.path = path
        self.requests: list[Request] = []
        self.request_times: list[float] = []     # time.monotonic() as each request came
        self._script: deque[Step] = deque()
        self._lock = threading.Lock()
        self._server = HttpServer()
        self._server.route(method, path, self._serve)

    def __enter__(self) -> FakeApi:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)

    @property
    def url(self) -> str:
        """The API's base URL (scheme, host and port; the transport adds the path)."""
        return self._server.url

    def script(self, *steps: Step) -> None:
        """Queue what the next requests get, one step per request, after any already queued."""
        for step in steps:
            self._script.extend([replace(step, times=1)] * step.times)

    def handle(self, request: Request) -> Response:
        """Check ``request`` as the provider documents it and answer as the provider does."""
        raise NotImplementedError

    def _serve(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            self.request_times.append(time.monotonic())
            step = self._script.popleft() if self._script else Step()
            if step.response is not None:
                return step.response
            if step.reply is not None:
                return step.reply(request)
            response = self.handle(request)
        # The server sleeps the delay after this returns, outside the lock.
        return replace(response, delay=step.delay)
