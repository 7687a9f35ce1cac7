"""The checks on config values that reach a mail header, a link or a database driver.

An operator's typo must be refused when the config is loaded (exit 3, one line naming the key
and the fix), never found by the first send — by then it fails every delivery of an edition,
or worse, goes out: an encoded word in ``from`` that decodes to a line break becomes a second
header; ``javascript:`` in ``[web] base_url`` becomes the List-Unsubscribe link.

Invariants, each an ``Annotated`` type that :mod:`digest.config` puts on its fields:

- :data:`MailAddress`: exactly one address that email-validator accepts, with an optional
  display name that is plain text (no encoded words ``=?``, no control characters, no line
  breaks) and angle brackets around the address when a name is given.
- :data:`LinkUrl`: an absolute ``https://`` URL, or ``http://`` to this machine (localhost,
  127.0.0.1, ::1) for trying things out; nothing that a browser or mail client could read as
  script or as a second URL.
- :data:`DatabaseUrl`: SQLite or PostgreSQL (through psycopg 3), the two databases we test on.

Error texts never repeat a database URL: it may hold a password.
"""

from __future__ import annotations

import re
from email.policy import default as email_policy
from typing import Annotated
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator

ADDRESS_EXAMPLE = '"Name <digest@example.com>"'
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


def mail_address(value: str) -> str:
    """One valid address with a plain display name, as a header value; "" is allowed."""
    if not value:
        return value
    if _CONTROL.search(value):
        raise ValueError(f"must be one line of plain text; write it as {ADDRESS_EXAMPLE}")
    if "=?" in value:
        raise ValueError("must not hold an encoded word (=?…?=); write the display name as "
                         f"plain text, e.g. {ADDRESS_EXAMPLE}")
    header = email_policy.header_factory("From", value)
    addresses = header.addresses
    if len(addresses) != 1:
        raise ValueError(f"must be exactly one address (found {len(addresses)}); write it as "
                         f"{ADDRESS_EXAMPLE}")
    if header.defects:
        raise ValueError(f"is not a valid address ({header.defects[0]}); write it as "
                         f"{ADDRESS_EXAMPLE}, with the address in angle brackets")
    address = addresses[0].addr_spec
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not a valid address ({exc}); write it as "
                         f"{ADDRESS_EXAMPLE}") from None
    return value


def bare_address(value: str) -> str:
    """One valid address without a display name (it goes inside a mailto: link); "" allowed."""
    if value:
        mail_address(value)
        if "<" in value or " " in value.strip():
            raise ValueError("must be a bare address such as unsubscribe@example.com")
    return value


def link_url(value: str) -> str:
    """An https URL (http for this machine); "" is allowed where the field may be empty."""
    if not value:
        return value
    if _CONTROL.search(value) or re.search(r"[\s\"'<>\\`]", value):
        raise ValueError("must be a plain URL without spaces, quotes or angle brackets, "
                         "e.g. https://digest.example.com")
    parts = urlsplit(value)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if not host or scheme not in ("https", "http"):
        raise ValueError("must be an absolute https:// URL, e.g. https://digest.example.com")
    if scheme == "http" and host not in LOCAL_HOSTS and not host.endswith(".localhost"):
        raise ValueError("must use https:// (http:// only for localhost); readers' mail "
                         "clients would warn about, or refuse, a plain-http link")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user name or password; it is shown to every reader")
    return value


def database_url(value: str) -> str:
    """A URL for one of the databases we support: SQLite or PostgreSQL with psycopg 3."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    fix = ('use "sqlite:///digest.db" or "postgresql+psycopg://user@host:5432/digest"')
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(f"is not a database URL; {fix}") from None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite" and driver in ("pysqlite", "") \
            or backend == "postgresql" and (driver == "psycopg" or "+" not in url.drivername):
        return value
    raise ValueError(f"{url.drivername}:// is not supported (SQLite and PostgreSQL are); {fix}")


MailAddress = Annotated[str, AfterValidator(mail_address)]
BareAddress = Annotated[str, AfterValidator(bare_address)]
LinkUrl = Annotated[str, AfterValidator(link_url)]
DatabaseUrl = Annotated[str, AfterValidator(database_url)]
