"""The site under test: the real app with every provider's webhook configured, served by
uvicorn, with a stand-in for SNS; and the questions tests ask its database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, select
from sqlmodel import Session

from digest.app import App
from digest.web.app import create_app
from digest.web.webhooks.routes import webhooks_from
from digest.web.webhooks import ses
from digest.web.webhooks.base import WebhookRequest
from subscribers.models import BounceEvent, Subscriber, Subscription, Suppression
from conftest import make_config
from support.asgi_server import AsgiServer
from webhooks.calls import (MAILGUN_KEY, POSTMARK_PASSWORD, POSTMARK_USER, PROVIDERS,
                            RESEND_SECRET, SOFT_BOUNCE_LIMIT, TOPIC_ARN, Call, public_key_b64,
                            sendgrid_key, sns_certificate_pem)


# -- the site under test ---------------------------------------------------------------------

@dataclass
class FakeSns:
    """Stands in for sns.<region>.amazonaws.com: serves the test certificate, records GETs."""

    certificate: bytes
    fetched: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    fail: bool = False

    def fetch_certificate(self, url: str) -> bytes:
        self.fetched.append(url)
        if self.fail:
            raise httpx.ConnectError("connection refused")
        return self.certificate

    def confirm(self, url: str) -> bytes:
        self.confirmed.append(url)
        return b"<ConfirmSubscriptionResponse/>"


@dataclass
class Site:
    url: str
    client: httpx.Client
    app: App
    engine: Engine
    sns: FakeSns

    def post(self, provider: str, call: Call) -> httpx.Response:
        return self.client.post(f"{self.url}/webhooks/{provider}", content=call.body,
                                headers=call.headers)

    def subscribe(self, *emails: str) -> None:
        for email in emails:
            self.app.subscribers.add(email, list_slug="morning")


def configured(tmp_path: Path, database_url: str, **overrides: dict) -> Any:
    sections: dict = {
        "postmark": {"webhook_username": POSTMARK_USER, "webhook_password": POSTMARK_PASSWORD},
        "sendgrid": {"webhook_public_key": public_key_b64(sendgrid_key())},
        "mailgun": {"webhook_signing_key": MAILGUN_KEY},
        "resend": {"webhook_secret": RESEND_SECRET},
        "ses": {"sns_topic_arn": TOPIC_ARN},
        "bounces": {"soft_bounce_limit": SOFT_BOUNCE_LIMIT},
    }
    sections.update(overrides)
    return make_config(tmp_path, database_url, **sections)


def serve_site(server: AsgiServer, client: httpx.Client, tmp_path: Path, database_url: str,
               engine: Engine) -> Iterator[Site]:
    app = App(configured(tmp_path, database_url), engine=engine)
    sns = FakeSns(sns_certificate_pem())
    hooks = webhooks_from(app)
    assert sorted(hooks) == sorted(PROVIDERS)
    hooks["ses"] = ses.from_settings(app.config.ses, fetch_certificate=sns.fetch_certificate,
                                   confirm_subscription=sns.confirm)
    app.lists.create("morning", "Morning Briefing")
    with server.serving(create_app(app, webhooks=hooks)):
        yield Site(server.url, client, app, engine, sns)


# -- reading the database --------------------------------------------------------------------

def suppression(engine: Engine, email: str) -> Suppression | None:
    with Session(engine) as session:
        return session.scalar(select(Suppression).where(Suppression.email_key == email.lower()))


def events_of(engine: Engine, email: str) -> list[BounceEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(BounceEvent).where(
            BounceEvent.email_key == email.lower()).order_by(BounceEvent.created_at)))


def subscription_status(engine: Engine, email: str) -> str | None:
    with Session(engine) as session:
        return session.scalar(select(Subscription.status).join(
            Subscriber, Subscriber.id == Subscription.subscriber_id).where(
            Subscriber.email_key == email.lower()))


def snapshot(engine: Engine) -> tuple:
    with Session(engine) as session:
        return (sorted((e.email_key, e.kind, e.event_id) for e in session.scalars(
                    select(BounceEvent))),
                sorted((s.email_key, s.reason) for s in session.scalars(select(Suppression))),
                sorted((s.subscriber_id, s.status) for s in session.scalars(
                    select(Subscription))))


def webhook_request(call: Call, received_at: float | None = None) -> WebhookRequest:
    return WebhookRequest(headers={k.lower(): v for k, v in call.headers.items()},
                          body=call.body,
                          received_at=time.time() if received_at is None else received_at)
