"""Check what people type before it reaches a row or a mail header."""

from __future__ import annotations

import re
import unicodedata

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from digest.errors import InputError

MAX_NAME_LENGTH = 200
# Any control character (CR and LF above all) in a name could end a mail header early.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
# The plain addresses nearly every list is made of (ASCII letters, digits, _ + - in dotted
# atoms; LDH domain labels without "--", so nothing IDNA would rewrite; an alphabetic TLD),
# which email-validator accepts and normalises by lower-casing the domain alone. These skip
# email-validator (70 µs an address, most of an import's time); anything else goes through
# it. tests/test_subscribers.py checks the two agree on generated addresses.
FAST_ADDRESS = re.compile(
    r"(?P<local>[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*)@"
    r"(?P<domain>(?:(?!-)(?![A-Za-z0-9-]*--)[A-Za-z0-9-]{1,63}(?<!-)\.)+"
    r"(?P<tld>[A-Za-z]{2,63}))")
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def normalise_email(raw: str, *, check_deliverability: bool = False) -> tuple[str, str]:
    """The normalised address and its lower-case key; InputError saying what is wrong."""
    text = (raw or "").strip()
    if not text:
        raise InputError("the email address is empty")
    if not check_deliverability:
        # The fast pattern admits no control character, so it may come before that check.
        fast = FAST_ADDRESS.fullmatch(text)
        if fast and len(fast["local"]) <= 64 and len(text) <= 254 \
                and fast["tld"].lower() not in _SPECIAL_USE:
            address = f"{fast['local']}@{fast['domain'].lower()}"
            return address, address.lower()
    if _CONTROL.search(text):
        raise InputError(f"{text!r} is not a valid email address: it contains a line break "
                         "or control character")
    try:
        # SMTPUTF8 (a non-ASCII local part) is refused: few servers accept it. Non-ASCII
        # domains are fine and are kept in their ASCII (IDNA) form, which every server reads.
        result = validate_email(text, check_deliverability=check_deliverability,
                                allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InputError(f"{text!r} is not a valid email address: {exc}") from None
    address = result.ascii_email or result.normalized
    return address, address.lower()


def clean_name(raw: str | None) -> str:
    """A display name: trimmed, NFC, one line, at most 200 characters."""
    name = unicodedata.normalize("NFC", (raw or "").strip())
    if _CONTROL.search(name):
        raise InputError(f"the name {name!r} contains a line break or control character",
                         hint="names must be one line of text")
    if len(name) > MAX_NAME_LENGTH:
        raise InputError(f"the name is {len(name)} characters long; the limit is "
                         f"{MAX_NAME_LENGTH}")
    return name


def check_tier(tier: str, known: list[str]) -> str:
    tier = (tier or "").strip()
    if tier not in known:
        raise InputError(f"unknown tier {tier!r}; known tiers: {', '.join(known)}",
                         hint="tiers are set under [tiers] in the config")
    return tier


SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


def check_slug(slug: str) -> str:
    # fullmatch: with match, "$" also matches before a final newline, so "morning\n" passed.
    if not SLUG.fullmatch(slug or ""):
        raise InputError(f"{slug!r} is not a valid list slug",
                         hint="use lower-case letters, digits and hyphens, e.g. morning-brief")
    return slug
