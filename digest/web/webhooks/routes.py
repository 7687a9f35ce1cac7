"""``POST /webhooks/{provider}``: bounces and complaints from the email-API providers.

Which providers have a webhook, and where it is, comes from the registry; a provider without a
webhook module, or whose webhook secret is not configured, answers 404. A body is verified
before it is read as events, and refused unread past :data:`MAX_WEBHOOK_BYTES` (the route's
limit, see :mod:`digest.web.body`).
"""

from __future__ import annotations

import logging
import time

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from digest.app import App
from digest.config import provider_settings
from digest.transports.registry import PROVIDERS
from digest.web.webhooks.base import Webhook, WebhookMalformed, WebhookRejected, WebhookRequest

log = logging.getLogger(__name__)

# Providers batch events (SendGrid up to about a thousand a call): far below this. Anything
# larger is refused before it is read into memory or verified.
MAX_WEBHOOK_BYTES = 5_000_000


def webhooks_from(app: App) -> dict[str, Webhook]:
    """The provider webhooks whose secrets are configured."""
    hooks: dict[str, Webhook] = {}
    for name, provider in PROVIDERS.items():
        hook = provider.make_webhook(provider_settings(app.config, name))
        if hook is not None:
            hooks[name] = hook
    return hooks


class WebhookEndpoint:
    """Verifies a provider's call, reads its events and records them as suppressions."""

    def __init__(self, app: App, hooks: dict[str, Webhook]) -> None:
        self.app = app
        self.hooks = hooks

    async def handle(self, request: Request) -> JSONResponse:
        provider = request.path_params["provider"]
        hook = self.hooks.get(provider)
        if hook is None:
            known = provider in PROVIDERS and PROVIDERS[provider].webhook is not None
            return JSONResponse({"error": f"no webhook for {provider!r} is configured"
                                 if known else f"unknown provider {provider!r}"}, status_code=404)
        body = await request.body()      # the route's max_body_size refuses more with 413
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
        outcome = await run_in_threadpool(self.app.suppressions.record, events)
        log.info("webhook provider=%s events=%d recorded=%d suppressed=%d duplicates=%d",
                 provider, len(events), outcome.recorded, outcome.suppressed, outcome.duplicates)
        return JSONResponse({"events": len(events), "recorded": outcome.recorded,
                             "suppressed": outcome.suppressed,
                             "duplicates": outcome.duplicates})


def routes(app: App, hooks: dict[str, Webhook]) -> list[Route]:
    return [Route("/webhooks/{provider}", WebhookEndpoint(app, hooks).handle, methods=["POST"],
                  max_body_size=MAX_WEBHOOK_BYTES)]
