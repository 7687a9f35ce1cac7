"""The ASGI app `digest serve` runs: provider webhooks and the unsubscribe page."""

from __future__ import annotations

import importlib
import logging
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from digest.app import App
from digest.config import PROVIDERS
from digest.errors import InputError
from digest.web.webhooks.base import Webhook, WebhookMalformed, WebhookRejected, WebhookRequest

log = logging.getLogger(__name__)


# Providers batch events (SendGrid up to about a thousand a call): far below this. Anything
# larger is refused before it is read into memory or verified.
MAX_WEBHOOK_BYTES = 5_000_000


async def _read_limited(request: Request, limit: int) -> bytes | None:
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


def webhooks_from(app: App) -> dict[str, Webhook]:
    """The provider webhooks whose secrets are configured."""
    hooks: dict[str, Webhook] = {}
    for provider in PROVIDERS:
        module = importlib.import_module(f"digest.web.webhooks.{provider}")
        hook = module.from_config(app.config)
        if hook is not None:
            hooks[provider] = hook
    return hooks


def create_app(app: App, *, webhooks: dict[str, Webhook] | None = None) -> Starlette:
    hooks = webhooks_from(app) if webhooks is None else webhooks

    async def webhook(request: Request) -> JSONResponse:
        provider = request.path_params["provider"]
        hook = hooks.get(provider)
        if hook is None:
            known = provider in PROVIDERS
            return JSONResponse({"error": f"no webhook for {provider!r} is configured"
                                 if known else f"unknown provider {provider!r}"}, status_code=404)
        body = await _read_limited(request, MAX_WEBHOOK_BYTES)
        if body is None:
            return JSONResponse({"error": f"body larger than {MAX_WEBHOOK_BYTES:,} bytes"},
                                status_code=413)
        call = WebhookRequest(headers={k.lower(): v for k, v in request.headers.items()},
                              body=body, received_at=time.time(),
                              query=dict(request.query_params))
        # In the thread pool: SES fetches its signing certificate (and confirms a subscription)
        # over the network, which must not stall the event loop.
        try:
            await run_in_threadpool(hook.verify, call)
        except WebhookRejected as exc:
            log.warning("webhook provider=%s status=rejected reason=%s", provider, exc.reason)
            # A 401 carries its challenge (Postmark's Basic auth) where the hook gives one.
            return JSONResponse({"error": exc.reason}, status_code=exc.status,
                                headers=getattr(exc, "headers", None))
        try:
            events = await run_in_threadpool(hook.parse, call)
        except WebhookMalformed as exc:
            log.warning("webhook provider=%s status=malformed reason=%s", provider, exc)
            return JSONResponse({"error": f"unreadable body: {exc}"}, status_code=400)
        outcome = await run_in_threadpool(app.suppressions.record, events)
        log.info("webhook provider=%s events=%d recorded=%d suppressed=%d duplicates=%d",
                 provider, len(events), outcome.recorded, outcome.suppressed, outcome.duplicates)
        return JSONResponse({"events": len(events), "recorded": outcome.recorded,
                             "suppressed": outcome.suppressed,
                             "duplicates": outcome.duplicates})

    async def health(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page(app), methods=["GET", "POST"]),
        Route("/healthz", health),
    ])


def unsubscribe_page(app: App):  # noqa: ANN201 - an ASGI endpoint
    """The link in every digest and in its List-Unsubscribe header.

    GET only shows a confirmation page: mail clients and scanners fetch links on their own,
    and a GET must never unsubscribe anyone. POST unsubscribes — from the button on that page,
    or from a mail client's RFC 8058 one-click request (body ``List-Unsubscribe=One-Click``),
    which gets a short plain answer.
    """
    template = app.templates.get_template("web/unsubscribe.html.j2")
    site = app.config.site

    def page(status: int = 200, **values: object) -> HTMLResponse:
        return HTMLResponse(template.render(site=site, **values), status_code=status,
                            headers={"Cache-Control": "no-store"})

    async def endpoint(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            subject = app.unsubscribe_signer.verify(token)
        except InputError as exc:
            return page(400, state="invalid", reason=exc.message)
        found = await run_in_threadpool(app.subscribers.subscription_of, subject.subscriber_id,
                                        subject.list_id)
        if found is None:
            return page(404, state="invalid",
                        reason="We could not find this subscription; it may have been removed.")
        email, list_name, status = found
        if request.method == "GET":
            return page(state="confirm" if status == "active" else "already", email=email,
                        list_name=list_name, action=str(request.url.path))
        body = (await request.body()).decode("utf-8", "replace")
        changed = await run_in_threadpool(app.subscribers.unsubscribe_by_id,
                                          subject.subscriber_id, subject.list_id)
        log.info("unsubscribe list=%s changed=%s one_click=%s", subject.list_id, changed,
                 "List-Unsubscribe=One-Click" in body)
        if "List-Unsubscribe=One-Click" in body:
            return PlainTextResponse("unsubscribed")
        return page(state="done" if changed else "already", email=email, list_name=list_name)

    return endpoint
