"""``/preferences/{token}``: a reader's own page — lists, topics, pause, resume, leave.

The token is signed (``web.secret_key``), expires after ``[web] link_max_age_days`` and names
a (subscriber, list) pair that must exist: a forged, tampered, expired or cross-list token
shows an error page and changes nothing. GET only shows; every change is a POST naming its
``action``, answered with a redirect back to the page (so a reload does not post again).
"""

from __future__ import annotations

import logging
from datetime import date
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.app import App
from digest.collect import recent_categories
from digest.errors import InputError
from digest.timeutil import utcnow
from digest.web.body import FormError, first, read_form
from digest.web.pages import HEADERS, origin_allowed, page
from subscribers.topics import topic_list

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024
SAVED = {"lists": "Your lists are saved.", "topics": "Your topics are saved.",
         "pause": "Your digests are paused.", "resume": "Your digests are back on.",
         "leave": "You are unsubscribed from everything."}


class PreferencesPage:
    def __init__(self, app: App) -> None:
        self.app = app
        self.template = app.templates.get_template("web/preferences.html.j2")

    def _invalid(self, status: int, reason: str) -> Response:
        return page(self.template, status, site=self.app.config.site, state="invalid",
                    reason=reason)

    async def handle(self, request: Request) -> Response:
        app = self.app
        try:
            subject = app.preferences_signer.verify(request.path_params["token"])
        except InputError as exc:
            return self._invalid(400, exc.message)
        if not await run_in_threadpool(app.self_service.belongs, subject.subscriber_id,
                                       subject.list_id):
            return self._invalid(404, "We could not find your subscription; it may have "
                                      "been removed.")
        if request.method == "POST":
            return await self._change(request, subject.subscriber_id)
        return await self._show(request, subject.subscriber_id)

    async def _show(self, request: Request, subscriber_id: int, *, status: int = 200,
                    error: str = "") -> Response:
        prefs = await run_in_threadpool(self.app.self_service.preferences, subscriber_id)
        if prefs is None:
            return self._invalid(404, "We could not find your subscription.")
        offered = await run_in_threadpool(recent_categories, self.app.engine)
        mine = {t.casefold() for t in topic_list(prefs.topics)}
        # The topics of recent posts, and the reader's own even if no recent post has them.
        shown = offered[:30]
        shown += [t for t in topic_list(prefs.topics)
                  if t.casefold() not in {s.casefold() for s in shown}]
        saved = SAVED.get(request.query_params.get("saved", ""), "")
        return page(self.template, status, site=self.app.config.site, state="show",
                    prefs=prefs, topics=shown,
                    checked={t for t in shown if t.casefold() in mine}, saved=saved,
                    error=error, action=str(request.url.path),
                    today=utcnow().date().isoformat())

    async def _change(self, request: Request, subscriber_id: int) -> Response:
        service = self.app.self_service
        if not origin_allowed(request, self.app.config.web.base_url):
            return self._invalid(403, "Changes are only accepted from this page.")
        try:
            form = await read_form(request, MAX_BODY)
        except FormError as exc:
            return self._invalid(exc.status, exc.message)
        action = first(form, "action")
        try:
            if action == "lists":
                await run_in_threadpool(service.set_lists, subscriber_id, form.get("list", []))
            elif action == "topics":
                await run_in_threadpool(service.set_topics, subscriber_id,
                                        [*form.get("topics", []), first(form, "other_topics")])
            elif action == "pause":
                until = _date(first(form, "until"))
                await run_in_threadpool(service.pause, subscriber_id, until,
                                        today=utcnow().date())
            elif action == "resume":
                await run_in_threadpool(service.resume, subscriber_id)
            elif action == "leave":
                await run_in_threadpool(service.leave_everything, subscriber_id)
            else:
                raise InputError(f"unknown action {action[:40]!r}")
        except InputError as exc:
            text = exc.message + (f" ({exc.hint})" if getattr(exc, "hint", "") else "")
            return await self._show(request, subscriber_id, status=400, error=text)
        log.info("preferences action=%s", action)
        return RedirectResponse(f"{request.url.path}?{urlencode({'saved': action})}",
                                status_code=303, headers=HEADERS)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError("give the date to pause until as YYYY-MM-DD") from None


def routes(app: App) -> list[Route]:
    return [Route("/preferences/{token}", PreferencesPage(app).handle,
                  methods=["GET", "POST"])]
