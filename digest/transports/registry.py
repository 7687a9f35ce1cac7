"""Every way a digest can leave, each declared once: ``[delivery] transport = "<name>"``.

A :class:`Provider` says everything the rest of the service derives: the config section that
holds its settings, the environment variables that override keys of it, the keys it cannot
send without, where its transport factory is and where its webhook factory is (if it has one).
:mod:`digest.config` builds its provider sections, ``ENV_OVERRIDES``, the choice of transports
and the missing-credentials check from :data:`PROVIDERS`; the App builds the transport and the
secret scrubber from it; the web app mounts the webhooks it declares.

Adding a provider: one adapter module with ``from_settings(settings, needs)``, its settings
class in :mod:`digest.transports.settings`, one entry below, and optionally a webhook module
with ``from_settings(settings)`` in :mod:`digest.web.webhooks`.

Invariants: this module imports no adapter and no webhook module (config reads it, and
``digest serve`` must start whatever optional package a provider needs); factories are named
as ``"module:function"`` and imported only when called. A section's secrets are its
``SecretStr`` keys.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from digest.transports.settings import (MailgunConfig, PostmarkConfig, ResendConfig, SendgridConfig,
                                        Section, SesConfig, SmtpConfig)

if TYPE_CHECKING:
    import httpx
    import jinja2

    from digest.scrub import Scrubber


def _no_client() -> httpx.Client:
    raise RuntimeError("this transport was given no HTTP client")


@dataclass(frozen=True)
class TransportNeeds:
    """What a transport factory may take besides its own settings section; the App makes it."""

    http_client: Callable[[], httpx.Client] = _no_client   # shared per provider, made on demand
    outbox: Path = Path("outbox")                           # the file transport's folder
    templates: jinja2.Environment | None = None             # the file transport's index page
    scrubber: Scrubber | None = None                        # every configured secret


@dataclass(frozen=True)
class Provider:
    name: str                          # [delivery] transport = name; its section is [name]
    transport: str                     # "module:function(settings, needs) -> Transport"
    settings: type[Section] | None = None
    env: Mapping[str, str] = field(default_factory=dict)   # DIGEST_… variable → section key
    credentials: tuple[str, ...] = ()  # keys that must be set before it can send at all
    webhook: str | None = None         # "module:function(settings) -> Webhook | None"

    def make_transport(self, settings: Section | None, needs: TransportNeeds) -> Any:
        """A new transport (it meets ``digest.deliver.Transport``, declared up there)."""
        return _load(self.transport)(settings, needs)

    def make_webhook(self, settings: Section | None) -> Any:
        """Its webhook, or None when it has none or the webhook's secret is not configured."""
        return _load(self.webhook)(settings) if self.webhook else None

    def secrets(self, settings: Section | None) -> Iterator[tuple[str, str]]:
        """(label, value) of each set ``SecretStr`` key: what errors and logs must not show."""
        if settings is None:
            return
        for key in type(settings).model_fields:
            value = getattr(settings, key)
            if isinstance(value, SecretStr) and value.get_secret_value():
                yield key.replace("_", " "), value.get_secret_value()


def _load(path: str) -> Callable[..., Any]:
    module, _, function = path.partition(":")
    return getattr(importlib.import_module(module), function)


def _env(name: str, *keys: str) -> dict[str, str]:
    """``DIGEST_<NAME>_<KEY>`` for each key, the naming every provider follows."""
    return {f"DIGEST_{name.upper()}_{key.upper()}": key for key in keys}


_WEBHOOKS = "digest.web.webhooks"

PROVIDERS: Mapping[str, Provider] = {p.name: p for p in (
    Provider("file", "digest.transports.file:from_settings"),
    Provider("smtp", "digest.transports.smtp:from_settings", SmtpConfig,
             env=_env("smtp", "password")),
    Provider("null", "digest.transports.null:from_settings"),
    Provider("postmark", "digest.transports.postmark:from_settings", PostmarkConfig,
             env=_env("postmark", "token", "webhook_password"), credentials=("token",),
             webhook=f"{_WEBHOOKS}.postmark:from_settings"),
    Provider("sendgrid", "digest.transports.sendgrid:from_settings", SendgridConfig,
             env=_env("sendgrid", "api_key", "webhook_public_key"), credentials=("api_key",),
             webhook=f"{_WEBHOOKS}.sendgrid:from_settings"),
    Provider("mailgun", "digest.transports.mailgun:from_settings", MailgunConfig,
             env=_env("mailgun", "api_key", "webhook_signing_key"),
             credentials=("api_key", "domain"), webhook=f"{_WEBHOOKS}.mailgun:from_settings"),
    Provider("resend", "digest.transports.resend:from_settings", ResendConfig,
             env=_env("resend", "api_key", "webhook_secret"), credentials=("api_key",),
             webhook=f"{_WEBHOOKS}.resend:from_settings"),
    Provider("ses", "digest.transports.ses:from_settings", SesConfig,
             env=_env("ses", "access_key_id", "secret_access_key", "session_token"),
             credentials=("access_key_id", "secret_access_key"),
             webhook=f"{_WEBHOOKS}.ses:from_settings"),
)}
