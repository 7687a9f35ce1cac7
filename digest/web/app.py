"""The ASGI app `digest serve` runs: one factory mounting the page modules.

Each page module (:mod:`digest.web.webhooks.routes`, :mod:`digest.web.unsubscribe`, …) gives
its routes for an :class:`~digest.app.App`; this module only puts them together, with the
health check.

Invariants: every route names its methods (a route without them would answer every verb), and
every request body is limited in size and time (:mod:`digest.web.body`): the app-wide default
is a form's few KB, and a route that needs more says so on its ``Route``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from digest.app import App
from digest.web import (confirm, editor, preferences, subscribe, unsubscribe,
                        webversion)
from digest.web.body import BODY_TIMEOUT_SECONDS, FORM_BODY_LIMIT, BodyTimeout
from digest.web.webhooks import routes as webhook_routes
from digest.web.webhooks.base import Webhook


async def health(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def create_app(app: App, *, webhooks: dict[str, Webhook] | None = None,
               body_timeout: float = BODY_TIMEOUT_SECONDS) -> Starlette:
    """``webhooks``: the provider webhooks to serve; by default those the config enables.
    ``body_timeout``: seconds a whole request body may take to arrive."""
    hooks = webhook_routes.webhooks_from(app) if webhooks is None else webhooks
    return Starlette(routes=[
        *webhook_routes.routes(app, hooks),
        *unsubscribe.routes(app),
        *webversion.routes(app),
        *subscribe.routes(app),
        *confirm.routes(app),
        *preferences.routes(app),
        *editor.routes(app),
        Route("/healthz", health, methods=["GET"]),    # HEAD comes with GET
    ], max_body_size=FORM_BODY_LIMIT,
        middleware=[Middleware(BodyTimeout, seconds=body_timeout)])
