"""The desk's pages and actions. Server-rendered, no JavaScript.

Invariants: every route has an explicit method list; every POST body is read with a limit and
must carry the session's CSRF token; nothing changes without a valid session (a GET without one
is sent to the login page, a POST without one changes nothing). With no editor password
configured the desk answers 404 everywhere. Text from outside (titles, subjects, addresses) is
escaped by the templates' autoescaping. Sending after an approval runs after the response, in
the same functions `digest editions approve` uses; state lives in rows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date
from urllib.parse import parse_qs, urlencode

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from digest.app import App
from digest.errors import DigestError, InputError, NotFoundError
from digest.web.body import FORM_BODY_LIMIT, read_limited
from digest.web.client_limit import ClientLimit
from digest.web.pages import client_ip, origin_allowed
from digest.web.editor.auth import (LOGIN_ATTEMPTS, LOGIN_COOKIE, LOGIN_WINDOW_SECONDS,
                                    SESSION_COOKIE, SESSION_HOURS, Password, Sessions)

log = logging.getLogger(__name__)

# What a notice in a redirect may say: fixed texts, so nothing from a URL is shown.
NOTICES = {
    "approved": "Approved: it goes at once if its send time has passed, else at that time.",
    "cancelled": "Cancelled: nothing of it will be sent; its posts go to the next edition.",
    "dropped": "The story was taken out of this edition.",
    "subject": "The subject was changed.",
    "test": "The test digest was sent.",
}
# The preview is our own rendered email: no scripts, shown only in the desk's frames.
PREVIEW_CSP = ("default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
               "frame-ancestors 'self'")
PAGE_CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " \
           "frame-ancestors 'none'; form-action 'self'"

Handler = Callable[..., Awaitable[Response]]


def _form(body: bytes) -> dict[str, str]:
    return {key: values[0] for key, values in
            parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


def _issue_date(value: str | None) -> date:
    if not value:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{value!r} is not a date", hint="write it as YYYY-MM-DD") from None


class Desk:
    def __init__(self, app: App, password: Password) -> None:
        self.app = app
        self.sessions = Sessions(app.secret_key, password)
        self.login_limit = ClientLimit(LOGIN_ATTEMPTS, LOGIN_WINDOW_SECONDS)
        self.password = password

    # -- responses -------------------------------------------------------------------------

    def render(self, request: Request, name: str, status: int = 200,
               session_id: str | None = None, **values: object) -> HTMLResponse:
        template = self.app.templates.get_template(f"web/editor/{name}.html.j2")
        html = template.render(site=self.app.config.site, path=request.url.path,
                               csrf=self.sessions.csrf_token(session_id) if session_id else "",
                               signed_in=session_id is not None, **values)
        return HTMLResponse(html, status_code=status, headers={
            "Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"})

    def error(self, request: Request, exc: DigestError, session_id: str | None) -> HTMLResponse:
        status = 404 if isinstance(exc, NotFoundError) else 400
        return self.render(request, "error", status, session_id, message=exc.message,
                           hint=exc.hint or "")

    # -- guards ----------------------------------------------------------------------------

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A GET page for a signed-in editor."""
        async def guarded(request: Request) -> Response:
            session_id = self.sessions.read(request.cookies.get(SESSION_COOKIE))
            if session_id is None:
                return RedirectResponse("/editor/login", status_code=303)
            try:
                return await handler(request, session_id)
            except DigestError as exc:
                return self.error(request, exc, session_id)
        return guarded

    def action(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A POST by a signed-in editor with the session's CSRF token."""
        async def guarded(request: Request) -> Response:
            session_id = self.sessions.read(request.cookies.get(SESSION_COOKIE))
            if session_id is None:
                return RedirectResponse("/editor/login", status_code=303)
            body = await read_limited(request, FORM_BODY_LIMIT)
            if body is None:
                return PlainTextResponse("form too large", status_code=413)
            form = _form(body)
            # The token is the defence; a browser's Origin from another site is refused too.
            if not (origin_allowed(request, self.app.config.web.base_url)
                    and self.sessions.csrf_ok(session_id, form.get("csrf", ""))):
                log.warning("editor csrf=refused path=%s", request.url.path)
                return self.render(request, "error", 403, session_id,
                                   message="This form has expired or did not come from the "
                                           "desk; nothing was changed.",
                                   hint="reload the page and try again")
            try:
                return await handler(request, form, session_id)
            except DigestError as exc:
                return self.error(request, exc, session_id)
        return guarded

    # -- login -----------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.login(request)
        token = request.cookies.get(LOGIN_COOKIE) or Sessions.new_login_token()
        response = self.render(request, "login", login_token=token, failed=False)
        self._cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
        return response

    async def login(self, request: Request) -> Response:
        client = client_ip(request)
        wait = self.login_limit.allow(client)
        if wait:
            log.warning("editor login=limited client=%s", client)
            return PlainTextResponse("Too many failed logins; try again later.",
                                     status_code=429,
                                     headers={"Retry-After": str(int(wait) + 1)})
        body = await read_limited(request, FORM_BODY_LIMIT)
        form = _form(body or b"")
        token = request.cookies.get(LOGIN_COOKIE, "")
        if not (body is not None and token and Sessions.same(token, form.get("csrf", ""))
                and origin_allowed(request, self.app.config.web.base_url)):
            return self.render(request, "error", 403, message="This login form has expired; "
                               "nothing was changed.", hint="reload the login page")
        ok = await run_in_threadpool(self.password.matches, form.get("password", ""))
        if not ok:
            log.warning("editor login=failed client=%s", client)
            return self.render(request, "login", 401, login_token=token, failed=True)
        cookie, _session_id = self.sessions.new()
        response = RedirectResponse("/editor/lists", status_code=303)
        self._cookie(request, response, SESSION_COOKIE, cookie, max_age=SESSION_HOURS * 3600)
        response.delete_cookie(LOGIN_COOKIE, path="/editor")
        log.info("editor login=ok client=%s", client)
        return response

    async def logout(self, request: Request, form: dict, session_id: str) -> Response:
        response = RedirectResponse("/editor/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/editor")
        return response

    @staticmethod
    def _cookie(request: Request, response: Response, name: str, value: str,
                max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/editor", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")

    # -- pages -----------------------------------------------------------------------------

    async def home(self, request: Request, session_id: str) -> Response:
        return RedirectResponse("/editor/lists", status_code=303)

    async def lists(self, request: Request, session_id: str) -> Response:
        from digest.desk import lists_overview

        rows = await run_in_threadpool(lists_overview, self.app)
        return self.render(request, "lists", session_id=session_id, rows=rows,
                           tiers=list(self.app.config.tiers))

    async def next_edition(self, request: Request, session_id: str) -> Response:
        from digest.desk import next_issue_date

        slug = request.path_params["slug"]
        given = request.query_params.get("date")
        issue_date = (_issue_date(given) if given
                      else await run_in_threadpool(next_issue_date, self.app, slug))
        return await self._edition(request, session_id, slug, issue_date)

    async def edition(self, request: Request, session_id: str) -> Response:
        from digest.jobs import edition_label

        edition, slug = await run_in_threadpool(edition_label, self.app,
                                                request.path_params["edition_id"])
        return await self._edition(request, session_id, slug, edition.issue_date)

    async def _edition(self, request: Request, session_id: str, slug: str,
                       issue_date: date) -> Response:
        from digest.desk import edition_page

        query = request.query_params
        subscriber = query.get("subscriber") or None
        page = await run_in_threadpool(edition_page, self.app, slug, issue_date,
                                       tier=query.get("tier"), subscriber_email=subscriber)
        frame = {"date": issue_date.isoformat(),
                 **({"subscriber": subscriber} if subscriber else {"tier": page.shown.tier})}
        return self.render(request, "edition", session_id=session_id, page=page,
                           preview_url=f"/editor/lists/{slug}/preview.html?{urlencode(frame)}",
                           notice=NOTICES.get(query.get("notice", ""), ""),
                           editor_email=self.app.config.web.editor_email,
                           subscriber=subscriber or "")

    async def archive(self, request: Request, session_id: str) -> Response:
        from digest.archive import list_editions

        mailing_list = await run_in_threadpool(self.app.lists.get, request.path_params["slug"])
        editions = await run_in_threadpool(lambda: list_editions(
            self.app.engine, list_id=mailing_list.id, limit=200))
        return self.render(request, "archive", session_id=session_id,
                           mailing_list=mailing_list, editions=editions,
                           tiers=list(self.app.config.tiers))

    async def preview(self, request: Request, session_id: str) -> Response:
        """The raw digest HTML exactly as the morning job would send it."""
        from digest.preview import render_preview

        query = request.query_params
        result = await run_in_threadpool(
            lambda: render_preview(self.app, request.path_params["slug"],
                                   _issue_date(query.get("date")), tier=query.get("tier"),
                                   subscriber_email=query.get("subscriber")))
        return HTMLResponse(result.message.html, headers={
            "Cache-Control": "no-store", "Content-Security-Policy": PREVIEW_CSP,
            "X-Content-Type-Options": "nosniff"})

    # -- actions ---------------------------------------------------------------------------

    def _back(self, edition_id: int, notice: str) -> RedirectResponse:
        return RedirectResponse(f"/editor/editions/{edition_id}?notice={notice}",
                                status_code=303)

    async def approve(self, request: Request, form: dict, session_id: str) -> Response:
        from digest.approval import approve
        from digest.jobs import approve_and_send

        edition_id = request.path_params["edition_id"]
        await run_in_threadpool(approve, self.app.engine, edition_id)
        log.info("editor approve edition=%d", edition_id)
        # Sending may take minutes: it runs after the answer, resumable like any send.
        response = self._back(edition_id, "approved")
        response.background = BackgroundTask(approve_and_send, self.app, edition_id)
        return response

    async def cancel(self, request: Request, form: dict, session_id: str) -> Response:
        from digest.approval import cancel

        edition_id = request.path_params["edition_id"]
        await run_in_threadpool(cancel, self.app.engine, edition_id)
        return self._back(edition_id, "cancelled")

    async def drop(self, request: Request, form: dict, session_id: str) -> Response:
        from digest.approval import drop_post

        edition_id = request.path_params["edition_id"]
        post_id = form.get("post", "")
        if not post_id.isdigit():
            raise InputError("no story was chosen to drop")
        await run_in_threadpool(drop_post, self.app.engine, edition_id, int(post_id))
        return self._back(edition_id, "dropped")

    async def subject(self, request: Request, form: dict, session_id: str) -> Response:
        from digest.approval import change_subject

        edition_id = request.path_params["edition_id"]
        await run_in_threadpool(change_subject, self.app.engine, edition_id,
                                form.get("subject", ""))
        return self._back(edition_id, "subject")

    async def test(self, request: Request, form: dict, session_id: str) -> Response:
        from digest.preview import send_test

        slug = request.path_params["slug"]
        issue_date = _issue_date(form.get("date"))
        subscriber = form.get("subscriber", "").strip() or None
        await run_in_threadpool(lambda: send_test(
            self.app, slug, issue_date, to=form.get("to", ""),
            tier=None if subscriber else form.get("tier", ""), subscriber_email=subscriber))
        back = {"date": issue_date.isoformat(), "notice": "test"}
        return RedirectResponse(f"/editor/lists/{slug}/next?{urlencode(back)}",
                                status_code=303)


async def _not_found(_request: Request) -> Response:
    return PlainTextResponse("Not Found", status_code=404)


def routes(app: App) -> list[Route]:
    """The desk's routes; without an editor password, one route answering 404 to all."""
    password = Password.of(app.config.web)
    if password is None:
        return [Route("/editor{rest:path}", _not_found, methods=["GET", "POST"])]
    desk = Desk(app, password)
    page, action = desk.page, desk.action
    return [
        Route("/editor", page(desk.home), methods=["GET"]),
        Route("/editor/", page(desk.home), methods=["GET"]),
        Route("/editor/login", desk.login_page, methods=["GET", "POST"]),
        Route("/editor/logout", action(desk.logout), methods=["POST"]),
        Route("/editor/lists", page(desk.lists), methods=["GET"]),
        Route("/editor/lists/{slug}/next", page(desk.next_edition), methods=["GET"]),
        Route("/editor/lists/{slug}/archive", page(desk.archive), methods=["GET"]),
        Route("/editor/lists/{slug}/preview.html", page(desk.preview), methods=["GET"]),
        Route("/editor/lists/{slug}/test", action(desk.test), methods=["POST"]),
        Route("/editor/editions/{edition_id:int}", page(desk.edition), methods=["GET"]),
        Route("/editor/editions/{edition_id:int}/approve", action(desk.approve),
              methods=["POST"]),
        Route("/editor/editions/{edition_id:int}/cancel", action(desk.cancel),
              methods=["POST"]),
        Route("/editor/editions/{edition_id:int}/drop", action(desk.drop), methods=["POST"]),
        Route("/editor/editions/{edition_id:int}/subject", action(desk.subject),
              methods=["POST"]),
    ]
