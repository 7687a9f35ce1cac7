"""The config sections of the digest's look and signature: [tiers] entries, [lists.<slug>],
[dkim]. Kept apart from :mod:`digest.config`, which assembles them with the rest.

Invariant: ``free = "teaser"`` and ``free = { access = "teaser" }`` load to the same
:class:`TierConfig`; a [dkim] section with a domain has a selector and a key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, SecretStr, model_validator

from digest.config_checks import LinkUrl
from digest.transports.settings import OneLine, Section


class TierConfig(Section):
    """One [tiers] entry: ``free = "teaser"``, or a table with the teaser's own call to action."""

    access: Literal["full", "teaser"]
    cta: OneLine = ""                        # the button's words; "" = the template's default
    cta_url: LinkUrl = ""                    # may hold {url}; "" = [site] signin_url


def _tier_from_word(value: object) -> object:
    # The plain form, free = "teaser", is the table form with only its access.
    if isinstance(value, str):
        if value not in ("full", "teaser"):
            raise ValueError("Input should be 'full' or 'teaser' (or a table such as "
                             '{ access = "teaser", cta = "Subscribe to read" })')
        return {"access": value}
    return value


Tier = Annotated[TierConfig, BeforeValidator(_tier_from_word)]


class ListConfig(Section):
    """[lists.<slug>]: wording for one mailing list."""

    greeting: OneLine = ""                   # "" = the template's "Good morning"


class DkimConfig(Section):
    """[dkim]: sign every message we build (SMTP, file outbox) with this domain's key."""

    domain: OneLine = ""                     # d=; empty: no DKIM signature
    selector: OneLine = ""                   # s=; the key is published at <selector>._domainkey
    private_key_file: str = ""               # a PEM file, relative to the config's folder
    private_key: SecretStr = SecretStr("")   # the PEM itself; DIGEST_DKIM_PRIVATE_KEY
    dmarc_reports: OneLine = ""              # rua= address in the DMARC record `dns-records` prints

    @model_validator(mode="after")
    def _complete(self) -> DkimConfig:
        if self.domain:
            if not self.selector:
                raise ValueError("[dkim] domain is set but selector is empty: set the selector "
                                 "you publish the key under, e.g. selector = \"digest\"")
            if not (self.private_key_file or self.private_key.get_secret_value()):
                raise ValueError("[dkim] domain is set but there is no key: set "
                                 "private_key_file, or DIGEST_DKIM_PRIVATE_KEY to the PEM text")
        return self
