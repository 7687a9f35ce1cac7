"""Every request body has a limit in size and in time, for every route of `digest serve`.

Size: Starlette's own body limit (``Starlette(max_body_size=…)`` for the app's default of
:data:`FORM_BODY_LIMIT`, ``Route(max_body_size=…)`` where a route needs more, as the webhooks
do). A declared ``Content-Length`` over the limit is answered 413 without reading a byte of the
body; a chunked body is refused as soon as what has arrived passes the limit, so memory never
holds more than the limit plus one chunk.

A page that reads a form may set a smaller limit of its own with :func:`read_form`, which
also answers 415 for a body that is not a form and 400 for one that cannot be read.

Time: :class:`BodyTimeout`, here. A client that trickles its body (a few bytes a second, to
hold a worker and a connection open) gets 408 once the whole body has not arrived within
``seconds`` of the page first asking for it. Only the body is timed: after its last chunk,
``receive`` waits for the client to go away, and that wait is the page's business.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request
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


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None if it is longer than ``limit`` (read no further than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


class FormError(Exception):
    """A form body we will not read: ``status`` (413, 415 or 400) and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request, limit: int) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body of at most ``limit`` bytes, as lists of
    values per field (a field may repeat: ``list``, ``topics``). FormError otherwise."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError(415, "send the form as application/x-www-form-urlencoded "
                             "(a plain HTML form does)")
    body = await read_limited(request, limit)
    if body is None:
        raise FormError(413, f"the form is larger than {limit} bytes")
    try:
        text = body.decode("utf-8")
        return parse_qs(text, keep_blank_values=True, strict_parsing=False,
                        max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormError(400, "the form could not be read (not UTF-8, or too many fields)"
                        ) from exc


def first(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0] if values else ""
