"""Wire everything in one place: from a Config to the objects the commands use.

Objects take their collaborators as arguments; only this module reads the config to build them.
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta
from functools import cached_property
from urllib.parse import urlsplit

from typing import TYPE_CHECKING

import httpx
import jinja2
from pydantic import BaseModel, SecretStr
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from digest.config import Config, provider_settings
from digest.db import make_engine, require_current, session_scope
from digest.models import AppSetting
from digest.scrub import Scrubber
from digest.weblinks import WebVersionLinks
from digest.transports.registry import PROVIDERS, TransportNeeds
from subscribers.lists import MailingLists
from subscribers.self_service import SelfService
from subscribers.service import SubscriberService
from subscribers.suppressions import Suppressions
from subscribers.tokens import PREFERENCES, TokenSigner

if TYPE_CHECKING:
    from digest.deliver import DeliveryQueue, ProgressListener
    from digest.sending import Deliverer
    from digest.dkim import DkimSigner
    from digest.ratelimit import RateLimiter
    from digest.reader_mail import ReaderMail
    from digest.render import Renderer
    from digest.sources.base import Source
    from digest.deliver import Transport
    from digest.variants import AccessRules, EditionMessages

SECRET_SETTING = "web.secret_key"


class App:
    """The service assembled from a config. Cheap to create; parts are built on first use."""

    def __init__(self, config: Config, *, engine: Engine | None = None) -> None:
        self.config = config
        self._engine = engine
        self._api_clients: dict[str, httpx.Client] = {}
        self._clients_lock = threading.Lock()

    @cached_property
    def engine(self) -> Engine:
        return self._engine or make_engine(self.config.database_url)

    def require_database(self) -> None:
        require_current(self.engine)

    # -- people --------------------------------------------------------------------------

    @cached_property
    def lists(self) -> MailingLists:
        return MailingLists(self.engine)

    @cached_property
    def subscribers(self) -> SubscriberService:
        return SubscriberService(self.engine, lists=self.lists, tiers=list(self.config.tiers),
                                 default_tier=self.config.default_tier,
                                 check_deliverability=self.config.subscribers.check_deliverability)

    @cached_property
    def suppressions(self) -> Suppressions:
        return Suppressions(self.engine, soft_bounce_limit=self.config.bounces.soft_bounce_limit)

    @cached_property
    def secret_key(self) -> str:
        """``web.secret_key`` (or DIGEST_SECRET_KEY); else one generated once and kept in the
        database, so that every process signing links agrees without any set-up."""
        configured = self.config.web.secret_key.get_secret_value()
        if configured:
            return configured
        with Session(self.engine) as session:
            stored = session.get(AppSetting, SECRET_SETTING)
            if stored is not None:
                return stored.value
        try:
            with session_scope(self.engine) as session:
                session.add(AppSetting(key=SECRET_SETTING, value=secrets.token_urlsafe(32)))
        except IntegrityError:
            pass  # another process stored one first; use theirs
        with Session(self.engine) as session:
            stored = session.get(AppSetting, SECRET_SETTING)
            assert stored is not None
            return stored.value

    @cached_property
    def unsubscribe_signer(self) -> TokenSigner:
        return TokenSigner(self.secret_key, max_age_days=self.config.web.link_max_age_days)

    def unsubscribe_url(self, subscriber_id: int, list_id: int,
                        issued_at: int | None = None) -> str:
        token = self.unsubscribe_signer.sign(subscriber_id, list_id, issued_at=issued_at)
        return f"{self.config.web.base_url}/unsubscribe/{token}"

    @cached_property
    def web_version_links(self) -> WebVersionLinks:
        return WebVersionLinks(self.secret_key, base_url=self.config.web.base_url,
                               max_age_days=self.config.web.link_max_age_days)

    def web_version_url(self, edition_id: int | None, key: str, subscriber_id: int,
                        _list_id: int, issued_at: int | None) -> str:
        return self.web_version_links.url(edition_id or 0, key, subscriber_id,
                                          issued_at=issued_at)

    # -- readers' own pages (sign-up, confirmation, preferences) -------------------------

    @cached_property
    def self_service(self) -> SelfService:
        subscribers = self.config.subscribers
        return SelfService(self.engine, default_tier=self.config.default_tier,
                           resend_minutes=subscribers.confirm_resend_minutes,
                           check_deliverability=subscribers.check_deliverability)

    @cached_property
    def confirm_signer(self) -> TokenSigner:
        # A confirmation link lives as long as the sign-up it confirms.
        return TokenSigner(self.secret_key, purpose="confirm",
                           max_age_days=self.config.subscribers.confirm_days)

    @cached_property
    def preferences_signer(self) -> TokenSigner:
        return TokenSigner(self.secret_key, purpose=PREFERENCES,
                           max_age_days=self.config.web.link_max_age_days)

    def confirm_url(self, subscriber_id: int) -> str:
        # A confirmation names the reader, not a list: it confirms every pending sign-up.
        return f"{self.config.web.base_url}/confirm/{self.confirm_signer.sign(subscriber_id, 0)}"

    def preferences_url(self, subscriber_id: int, list_id: int,
                        issued_at: int | None = None) -> str:
        """The reader's preferences page, as linked from a digest of ``list_id`` (the footer
        puts it next to :meth:`unsubscribe_url`) or from the welcome email."""
        token = self.preferences_signer.sign(subscriber_id, list_id, issued_at=issued_at)
        return f"{self.config.web.base_url}/preferences/{token}"

    @cached_property
    def reader_mail(self) -> ReaderMail:
        from digest.reader_mail import ReaderMail, SiteInfo

        site = self.config.site
        return ReaderMail(templates=self.templates, transports=self.transport,
                          sender=self.config.delivery.from_, site=SiteInfo(site.name, site.url))

    # -- content -------------------------------------------------------------------------

    def sources(self, client: httpx.Client | None) -> list[Source]:
        from digest.sources.feed import FeedSource

        collect = self.config.collect
        return [FeedSource(source.name, self.config.source_location(source), client=client,
                           timeout=source.timeout_seconds or collect.timeout_seconds,
                           max_bytes=source.max_bytes or collect.max_bytes,
                           allow_private_redirects=collect.allow_private_redirects)
                for source in self.config.sources]

    def http_client(self) -> httpx.Client:
        return httpx.Client(headers={"User-Agent": self.config.collect.user_agent},
                            timeout=self.config.collect.timeout_seconds)

    @cached_property
    def templates(self) -> jinja2.Environment:
        from digest.render import make_environment

        override = self.config.templates.dir
        return make_environment(self.config.resolve_path(override) if override else None)

    def renderer(self) -> Renderer:
        from digest.render import Renderer, SiteView

        site = self.config.site
        return Renderer(self.templates, SiteView(site.name, site.url, site.signin_url,
                                                 site.postal_address, site.language),
                        max_html_bytes=self.config.editions.max_html_bytes,
                        greetings={slug: wording.greeting
                                   for slug, wording in self.config.lists.items()})

    @cached_property
    def access(self) -> AccessRules:
        from digest.variants import AccessRules

        return AccessRules(dict(self.config.tiers),
                           frozenset(self.config.access.public_categories),
                           self.config.site.signin_url,
                           teaser_label=self.config.access.teaser_label)

    def edition_messages(self) -> EditionMessages:
        """A fresh message factory: it caches each rendered variant for its lifetime."""
        from digest.variants import EditionMessages

        delivery = self.config.delivery
        list_id_domain = urlsplit(self.config.web.base_url).hostname or "digest.invalid"
        return EditionMessages(
            engine=self.engine, renderer=self.renderer(), access=self.access,
            builder_options={
                "sender": delivery.from_,
                "reply_to": delivery.reply_to,
                "list_id_domain": list_id_domain,
                "unsubscribe_mailto": delivery.unsubscribe_mailto,
                "greeting_fallback": self.config.editions.greeting_fallback,
                "message_id_key": self.secret_key,
                "dkim": self.dkim_signer,
            },
            unsubscribe_url=self.unsubscribe_url, preferences_url=self.preferences_url,
            web_version_url=self.web_version_url)

    @cached_property
    def dkim_signer(self) -> DkimSigner | None:
        """The [dkim] signer, or None when [dkim] domain is empty."""
        from digest.dkim import DkimKey, DkimSigner

        dkim = self.config.dkim
        if not dkim.domain:
            return None
        pem = dkim.private_key.get_secret_value()
        if pem:
            key = DkimKey.load(dkim.domain, dkim.selector, pem.encode(),
                               source="DIGEST_DKIM_PRIVATE_KEY")
        else:
            key = DkimKey.from_file(dkim.domain, dkim.selector,
                                    self.config.resolve_path(dkim.private_key_file))
        return DkimSigner(key)

    # -- delivery ------------------------------------------------------------------------

    def transport(self) -> Transport:
        """A new transport of the configured kind, from its registry entry. Sending threads
        get one each; email-API transports share one HTTP client per provider."""
        name = self.config.delivery.transport
        return PROVIDERS[name].make_transport(
            provider_settings(self.config, name),
            TransportNeeds(http_client=lambda: self.api_http_client(name),
                           outbox=self.config.outbox_dir, templates=self.templates,
                           scrubber=self.scrubber))

    def api_http_client(self, provider: str) -> httpx.Client:
        """The provider's shared HTTP client, with the timeout of its section."""
        with self._clients_lock:
            if provider not in self._api_clients:
                from digest.transports.http import make_client

                section = provider_settings(self.config, provider)
                self._api_clients[provider] = make_client(
                    timeout=getattr(section, "timeout_seconds", 30.0))
            return self._api_clients[provider]

    @cached_property
    def scrubber(self) -> Scrubber:
        """Every configured secret, for error texts and, as a logging filter and on the CLI's
        output, every line printed: each secret key of every section (found by walking the
        config, so that a secret added later is covered without a line here), the database
        URL's password, and SMTP's AUTH PLAIN and LOGIN forms (base64 of ``\\0user\\0password``
        and of ``user:password``)."""
        found = [(key.replace("_", " "), value.get_secret_value())
                 for name in type(self.config).model_fields
                 if isinstance(section := getattr(self.config, name), BaseModel)
                 for key in type(section).model_fields
                 if isinstance(value := getattr(section, key), SecretStr)]
        smtp = self.config.smtp
        password = smtp.password.get_secret_value()
        if smtp.username and password:
            found += [("password", f"\0{smtp.username}\0{password}"),
                      ("password", f"{smtp.username}:{password}")]
        found.append(("database password", make_url(self.config.database_url).password or ""))
        return Scrubber(found)

    def rate_limiter(self) -> RateLimiter | None:
        from digest.ratelimit import RateLimiter

        delivery = self.config.delivery
        if not (delivery.rate_per_second or delivery.rate_per_hour):
            return None
        return RateLimiter(per_second=delivery.rate_per_second, per_hour=delivery.rate_per_hour)

    def deliverer(self, *, concurrency: int | None = None, worker_id: str | None = None,
                  progress: ProgressListener | None = None) -> Deliverer:
        """The delivery path `digest send` and `digest worker` share."""
        from digest.sending import Deliverer

        delivery = self.config.delivery
        return Deliverer(self.delivery_queue(worker_id), self.transport,
                         self.edition_messages(), batch_size=delivery.batch_size,
                         concurrency=concurrency or delivery.concurrency,
                         rate_limiter=self.rate_limiter(), progress=progress,
                         max_wait=delivery.max_wait_seconds)

    def delivery_queue(self, worker_id: str | None = None) -> DeliveryQueue:
        from digest.deliver import DeliveryQueue, RetryPolicy, default_worker_id

        delivery = self.config.delivery
        return DeliveryQueue(
            self.engine, worker_id=worker_id or default_worker_id(),
            claim_timeout=timedelta(seconds=delivery.claim_timeout_seconds),
            suppressions=self.suppressions, provider=delivery.transport,
            retry=RetryPolicy(delivery.max_attempts, delivery.retry_base_seconds,
                              delivery.retry_max_seconds),
            uncertain_policy=delivery.uncertain)
