"""``/web/{token}``: the "View in your browser" page of one reader's digest.

The token (:mod:`digest.weblinks`) names an edition, a variant and a reader; the page is that
variant's HTML personalised for that reader, built by the same message factory as the mail, so
it shows exactly what they were sent (teasers stay teasers). Variants are rendered once per
process and kept (at most MAX_VARIANTS of them). GET and HEAD only; a request with a body is refused. Stories are third-party
HTML already sanitised at collect time; the Content-Security-Policy forbids scripts anyway.
"""

from __future__ import annotations

import logging
import threading

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from digest.app import App
from digest.errors import InputError
from digest.message import Recipient
from digest.variants import EditionMessages
from digest.web.body import read_limited
from subscribers.models import Subscriber

log = logging.getLogger(__name__)

MAX_BODY = 0                  # a GET carries no body
# Rendered variants kept at most (about 100 KB each); past this the cache starts afresh.
MAX_VARIANTS = 64
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; img-src https: http: data:; "
                               "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}


class WebVersionPage:
    def __init__(self, app: App) -> None:
        self.app = app
        self.error_template = app.templates.get_template("web/webversion_error.html.j2")
        self._messages: EditionMessages | None = None
        self._lock = threading.Lock()

    def messages(self) -> EditionMessages:
        with self._lock:
            if self._messages is None or self._messages.cached_variants() >= MAX_VARIANTS:
                self._messages = self.app.edition_messages()
            return self._messages

    def error(self, status: int, reason: str) -> HTMLResponse:
        return HTMLResponse(self.error_template.render(site=self.app.config.site, reason=reason),
                            status_code=status, headers=SECURITY_HEADERS)

    def html_for(self, edition_id: int, key: str, subscriber_id: int) -> str:
        with Session(self.app.engine) as session:
            person = session.get(Subscriber, subscriber_id)
            email, name = (person.email, person.name) if person else ("", "")
        builder = self.messages().builder_for_key(edition_id, key)
        return builder.build(Recipient(0, subscriber_id, email, name)).html

    async def handle(self, request: Request) -> Response:
        if await read_limited(request, MAX_BODY) is None:
            return self.error(413, "This page takes no request body.")
        try:
            target = self.app.web_version_links.verify(request.path_params["token"])
        except InputError as exc:
            return self.error(400, exc.message)
        try:
            html = await run_in_threadpool(self.html_for, target.edition_id, target.variant_key,
                                           target.subscriber_id)
        except LookupError:
            return self.error(404, "This edition no longer exists.")
        log.info("web version edition=%s variant=%s", target.edition_id, target.variant_key)
        return HTMLResponse(html, headers=SECURITY_HEADERS)


def routes(app: App) -> list[Route]:
    return [Route("/web/{token}", WebVersionPage(app).handle, methods=["GET", "HEAD"])]
