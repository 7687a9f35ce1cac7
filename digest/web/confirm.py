"""``/confirm/{token}``: the link in the confirmation email.

GET (and HEAD) only show a button: mail scanners and link previews fetch links on their own,
and fetching must never confirm anyone. POST confirms every pending sign-up of the reader and
sends the welcome email with the link to their preferences page. A forged, tampered or expired
token (it lives ``[subscribers] confirm_days``) changes nothing.
"""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digest.app import App
from digest.errors import InputError
from digest.web.pages import page
from subscribers.models import PENDING

log = logging.getLogger(__name__)


class ConfirmPage:
    def __init__(self, app: App) -> None:
        self.app = app
        self.template = app.templates.get_template("web/confirm.html.j2")

    def _page(self, status: int = 200, **values: object) -> Response:
        return page(self.template, status, site=self.app.config.site,
                    **{"email": "", "lists": [], "reason": "", **values})

    async def handle(self, request: Request) -> Response:
        app = self.app
        try:
            subject = app.confirm_signer.verify(request.path_params["token"])
        except InputError as exc:
            return self._page(400, state="invalid", reason=exc.message)
        prefs = await run_in_threadpool(app.self_service.preferences, subject.subscriber_id)
        if prefs is None:
            return self._page(404, state="invalid",
                              reason="We could not find this sign-up; it may have expired.")
        pending = [choice.name for choice in prefs.lists if choice.status == PENDING]
        if request.method != "POST":
            return self._page(state="confirm" if pending else "already", email=prefs.email,
                              lists=pending, action=str(request.url.path))
        confirmed = await run_in_threadpool(app.self_service.confirm, subject.subscriber_id)
        log.info("confirm lists=%d", len(confirmed))
        if not confirmed:
            return self._page(state="already", email=prefs.email)
        response = self._page(state="done", email=prefs.email,
                              lists=[name for _id, name in confirmed])
        response.background = BackgroundTask(
            app.reader_mail.send_welcome, to=prefs.email, name=prefs.name,
            preferences_url=app.preferences_url(prefs.subscriber_id, confirmed[0][0]),
            list_names=[name for _id, name in confirmed])
        return response


def routes(app: App) -> list[Route]:
    return [Route("/confirm/{token}", ConfirmPage(app).handle, methods=["GET", "POST"])]
