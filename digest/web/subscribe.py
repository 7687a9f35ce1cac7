"""``/subscribe``: the sign-up form (GET) and sign-ups (POST) with double opt-in.

Invariants: every accepted POST answers the same "check your inbox" page, whether the address
was new, pending, already subscribed or suppressed — nobody can learn from it who reads us. The
confirmation email goes out after the answer (a background task), so the answer's timing does
not tell either. A filled honeypot field (``website``) gets the same page and changes nothing.
Posts from other sites' pages are taken only from ``[web] subscribe_origins``; each client IP
may post ``[web] subscribe_per_ip_per_hour`` times an hour; a body over MAX_BODY is refused.
"""

from __future__ import annotations

import logging
import time

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.app import App
from digest.collect import recent_categories
from digest.errors import InputError
from digest.web.body import FormError, first, read_form
from digest.web.client_limit import ClientLimit
from digest.web.pages import client_ip, origin_allowed, origin_of, page
from subscribers.service import expire_pending

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024
EXPIRE_EVERY = 3600.0         # seconds between sweeps of expired sign-ups, per process


class SubscribePage:
    def __init__(self, app: App) -> None:
        self.app = app
        self.template = app.templates.get_template("web/subscribe.html.j2")
        self.limit = ClientLimit(app.config.web.subscribe_per_ip_per_hour, 3600.0)
        self._swept = 0.0

    def _page(self, status: int = 200, headers: dict[str, str] | None = None,
              **values: object) -> Response:
        defaults = {"site": self.app.config.site, "lists": [], "topics": [], "chosen": [],
                    "email": "", "name": "", "error": "", "state": "form"}
        return page(self.template, status, headers=headers, **{**defaults, **values})

    async def form(self, request: Request) -> Response:
        wanted = request.query_params.getlist("list")
        lists = await run_in_threadpool(self.app.lists.with_counts)
        topics = await run_in_threadpool(recent_categories, self.app.engine)
        choices = [(m.slug, m.name) for m, _active, _gone in lists]
        return self._page(lists=choices, topics=topics[:30],
                          chosen=[slug for slug, _ in choices if slug in wanted]
                          or ([choices[0][0]] if len(choices) == 1 else []))

    async def post(self, request: Request) -> Response:
        config = self.app.config.web
        cors = {}
        origin = request.headers.get("origin")
        if not origin_allowed(request, config.base_url, config.subscribe_origins):
            log.info("subscribe refused origin=%s", origin)
            return self._page(403, state="error", error="Sign-ups are not accepted from the "
                              "page you came from. Use the form on our own site.")
        if origin is not None and origin.lower() != origin_of(str(request.base_url)):
            cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        wait = self.limit.allow(client_ip(request))
        if wait:
            return self._page(429, headers={**cors, "Retry-After": str(int(wait) + 1)},
                              state="error", error="Too many sign-ups from your connection. "
                                                   "Please try again in an hour.")
        try:
            form = await read_form(request, MAX_BODY)
        except FormError as exc:
            return self._page(exc.status, headers=cors, state="error", error=exc.message)
        if first(form, "website").strip():
            log.info("subscribe honeypot filled; ignored")
            return self._page(headers=cors, state="sent")
        email, name = first(form, "email"), first(form, "name")
        try:
            signup = await run_in_threadpool(
                self.app.self_service.sign_up, email, [s for s in form.get("list", []) if s],
                name=name, topics=form.get("topics", []))
        except InputError as exc:
            return await self._retry(exc.message, email=email, name=name,
                                     chosen=form.get("list", []), headers=cors)
        await run_in_threadpool(self._expire_now_and_then)
        task = None
        if signup.send_confirmation and signup.subscriber_id is not None:
            task = BackgroundTask(self._send_confirmation, signup.subscriber_id, signup.email,
                                  signup.list_names)
        log.info("subscribe accepted confirmation=%s", signup.send_confirmation)
        response = self._page(headers=cors, state="sent")
        response.background = task
        return response

    async def _retry(self, error: str, **values: object) -> Response:
        lists = await run_in_threadpool(self.app.lists.with_counts)
        topics = await run_in_threadpool(recent_categories, self.app.engine)
        return self._page(400, lists=[(m.slug, m.name) for m, _a, _g in lists],
                          topics=topics[:30], error=error, **values)

    def _send_confirmation(self, subscriber_id: int, email: str,
                           list_names: tuple[str, ...]) -> None:
        self.app.reader_mail.send_confirmation(
            to=email, confirm_url=self.app.confirm_url(subscriber_id),
            list_names=list_names, valid_days=self.app.config.subscribers.confirm_days)

    def _expire_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._swept >= EXPIRE_EVERY or not self._swept:
            self._swept = now
            expired = expire_pending(self.app.engine, self.app.config.subscribers.confirm_days)
            if expired:
                log.info("subscribe expired pending=%d", expired)


def routes(app: App) -> list[Route]:
    handler = SubscribePage(app)
    return [Route("/subscribe", handler.form, methods=["GET"]),
            Route("/subscribe", handler.post, methods=["POST"])]
