"""What the readers' pages share: rendering a page template, and where a form may come from."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

# Security headers for every reader page: no framing (clickjacking on the buttons), no
# referrer to other sites (the token is in the URL; "no-referrer" would make browsers send
# "Origin: null" on our own forms), no caching of a page that shows an address.
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin",
           "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                      "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}


def page(template: jinja2.Template, status: int = 200, *, headers: dict[str, str] | None = None,
         **values: object) -> HTMLResponse:
    return HTMLResponse(template.render(**values), status_code=status,
                        headers={**HEADERS, **(headers or {})})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(request: Request, base_url: str, others: Iterable[str] = ()) -> bool:
    """A POST without an Origin header (older clients) is allowed; one with an Origin must come
    from this server, from ``base_url``, or from one of ``others``."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    allowed = {origin_of(str(request.base_url)), origin_of(base_url),
               *(o.lower() for o in others)}
    return origin.lower() in allowed


def client_ip(request: Request) -> str:
    # uvicorn sets client from X-Forwarded-For only for trusted proxies (--forwarded-allow-ips),
    # so a client cannot pick its own key by sending the header.
    return request.client.host if request.client else "unknown"
