"""The ASGI app `digest serve` runs: provider webhooks (and, later, pages for people)."""

from __future__ import annotations

import importlib
import logging
import time

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from digest.app import App
from digest.config import PROVIDERS
from digest.web.webhooks.base import Webhook, WebhookMalformed, WebhookRejected, WebhookRequest

log = logging.getLogger(__name__)


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
        call = WebhookRequest(headers={k.lower(): v for k, v in request.headers.items()},
                              body=await request.body(), received_at=time.time(),
                              query=dict(request.query_params))
        try:
            hook.verify(call)
        except WebhookRejected as exc:
            log.warning("webhook provider=%s status=rejected reason=%s", provider, exc.reason)
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        try:
            events = hook.parse(call)
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
        Route("/healthz", health),
    ])
