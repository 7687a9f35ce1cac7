"""Every request body has a limit in size and in time, for every route of `digest serve`.

Size: Starlette's own body limit (``Starlette(max_body_size=…)`` for the app's default of
:data:`FORM_BODY_LIMIT`, ``Route(max_body_size=…)`` where a route needs more, as the webhooks
do). A declared ``Content-Length`` over the limit is answered 413 without reading a byte of the
body; a chunked body is refused as soon as what has arrived passes the limit, so memory never
holds more than the limit plus one chunk.

Time: :class:`BodyTimeout`, here. A client that trickles its body (a few bytes a second, to
hold a worker and a connection open) gets 408 once the whole body has not arrived within
``seconds`` of the page first asking for it. Only the body is timed: after its last chunk,
``receive`` waits for the client to go away, and that wait is the page's business.
"""

from __future__ import annotations

import asyncio
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Forms post a token and a button, RFC 8058 posts "List-Unsubscribe=One-Click": a few bytes.
FORM_BODY_LIMIT = 16_384
# How long a whole request body may take to arrive.
BODY_TIMEOUT_SECONDS = 10.0


class BodyTimeout:
    """ASGI middleware: 408 for a body that has not fully arrived within ``seconds``."""

    def __init__(self, app: ASGIApp, seconds: float = BODY_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline: float | None = None
        body_done = False

        async def timed_receive() -> Message:
            nonlocal deadline, body_done
            if body_done:
                return await receive()
            if deadline is None:
                deadline = time.monotonic() + self.seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                # An HTTPException: Starlette answers it (408) if the page has not answered yet.
                raise HTTPException(408, "the request body took too long to arrive",
                                    headers={"Connection": "close"}) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        await self.app(scope, timed_receive, send)
