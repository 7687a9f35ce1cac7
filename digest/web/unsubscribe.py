"""``/unsubscribe/{token}``: the link in every digest and in its List-Unsubscribe header.

GET (and HEAD, a bodiless GET) only shows a confirmation page: mail clients, scanners and link
previewers fetch links on their own, and must never unsubscribe anyone. Only POST unsubscribes — from the button on that page, or from a
mail client's RFC 8058 one-click request (body ``List-Unsubscribe=One-Click``), which gets a
short plain answer.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.app import App
from digest.errors import InputError
from digest.web.pages import page

log = logging.getLogger(__name__)

ONE_CLICK = "List-Unsubscribe=One-Click"


class UnsubscribePage:
    def __init__(self, app: App) -> None:
        self.app = app
        self.template = app.templates.get_template("web/unsubscribe.html.j2")

    def page(self, status: int = 200, **values: object) -> HTMLResponse:
        # Through the readers' pages' helper: its headers keep the button from being framed.
        return page(self.template, status, site=self.app.config.site, **values)

    async def handle(self, request: Request) -> Response:
        app = self.app
        try:
            subject = app.unsubscribe_signer.verify(request.path_params["token"])
        except InputError as exc:
            return self.page(400, state="invalid", reason=exc.message)
        found = await run_in_threadpool(app.subscribers.subscription_of, subject.subscriber_id,
                                        subject.list_id)
        if found is None:
            return self.page(404, state="invalid", reason="We could not find this subscription; "
                                                          "it may have been removed.")
        email, list_name, status = found
        if request.method != "POST":      # GET or HEAD: the route allows nothing else
            return self.page(state="confirm" if status == "active" else "already", email=email,
                             list_name=list_name, action=str(request.url.path))
        # The app's form limit (digest.web.body) has already refused a large or slow body.
        body = (await request.body()).decode("utf-8", "replace")
        changed = await run_in_threadpool(app.subscribers.unsubscribe_by_id,
                                          subject.subscriber_id, subject.list_id)
        log.info("unsubscribe list=%s changed=%s one_click=%s", subject.list_id, changed,
                 ONE_CLICK in body)
        if ONE_CLICK in body:
            return PlainTextResponse("unsubscribed")
        return self.page(state="done" if changed else "already", email=email,
                         list_name=list_name)


def routes(app: App) -> list[Route]:
    return [Route("/unsubscribe/{token}", UnsubscribePage(app).handle, methods=["GET", "POST"])]
