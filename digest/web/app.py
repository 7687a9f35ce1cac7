"""The ASGI app `digest serve` runs: one factory mounting the page modules.

Each page module (:mod:`digest.web.webhooks.routes`, :mod:`digest.web.unsubscribe`, …) gives
its routes for an :class:`~digest.app.App`; this module only puts them together, with the
health check (which asks the database: 503 with the reason when it cannot answer or is not at
the current schema) and the Prometheus metrics (:mod:`digest.metrics`); neither takes a body.

Invariants: every route names its methods (a route without them would answer every verb), and
every request body is limited in size and time (:mod:`digest.web.body`): the app-wide default
is a form's few KB, and a route that needs more says so on its ``Route``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from digest.app import App
from digest.db import require_current
from digest.errors import DigestError
from digest.metrics import CONTENT_TYPE, exposition
from digest.web import (confirm, editor, preferences, subscribe, unsubscribe,
                        webversion)
from digest.web.body import BODY_TIMEOUT_SECONDS, FORM_BODY_LIMIT, BodyTimeout
from digest.web.webhooks import routes as webhook_routes
from digest.web.webhooks.base import Webhook


def health_route(app: App) -> Route:
    def check() -> str | None:
        """None if the database answers at the current schema, else why not."""
        try:
            require_current(app.engine)     # a query, and the schema `digest init` made
        except DigestError as exc:
            return app.scrubber.text(exc.message)
        except Exception as exc:  # noqa: BLE001 - any failure to answer is the answer
            return app.scrubber.text(f"database error: {getattr(exc, 'orig', exc)}")
        return None

    async def health(_request: Request) -> PlainTextResponse:
        problem = await run_in_threadpool(check)
        if problem is not None:
            return PlainTextResponse(f"unavailable: {problem.splitlines()[0]}\n",
                                     status_code=503, headers={"Cache-Control": "no-store"})
        return PlainTextResponse("ok", headers={"Cache-Control": "no-store"})

    return Route("/healthz", health, methods=["GET"])


def metrics_route(app: App) -> Route:
    async def metrics(_request: Request) -> Response:
        return Response(await run_in_threadpool(exposition, app), media_type=CONTENT_TYPE)

    return Route("/metrics", metrics, methods=["GET"])


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
        health_route(app),       # GET (and the HEAD that comes with it) only
        metrics_route(app),
    ], max_body_size=FORM_BODY_LIMIT,
        middleware=[Middleware(BodyTimeout, seconds=body_timeout)])
