"""Reading request bodies with a limit, for every page that takes one from strangers."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request


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
