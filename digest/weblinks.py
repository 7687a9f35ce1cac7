"""Signed, expiring "View in your browser" links: one per reader and edition.

A token names an edition, a variant key (``full``, ``teaser``, ``teaser.<tier>``) and a
subscriber; it is signed with the web secret key (itsdangerous, HMAC with a timestamp) and
expires after ``[web] link_max_age_days``. Whoever holds the link sees exactly that reader's
variant, as it was mailed — nothing more: the token cannot be changed to name another edition,
variant or reader without the key.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired
from itsdangerous.encoding import base64_decode, base64_encode

from digest.errors import InputError
from subscribers.tokens import FastTimestampSigner


@dataclass(frozen=True)
class WebVersionTarget:
    edition_id: int
    variant_key: str
    subscriber_id: int


class WebVersionLinks:
    def __init__(self, secret_key: str, *, base_url: str, max_age_days: int) -> None:
        if not secret_key:
            raise InputError("no secret key to sign links with",
                             hint="set web.secret_key or DIGEST_SECRET_KEY")
        # Stamped with the edition's time, so a retried message carries the very same link (a
        # retried API batch is then the same request, byte for byte).
        self._signer = FastTimestampSigner(secret_key, salt="digest.webversion")
        self._base_url = base_url.rstrip("/")
        self._max_age = max_age_days * 86400

    def url(self, edition_id: int, variant_key: str, subscriber_id: int, *,
            issued_at: int | None = None) -> str:
        """The reader's link; ``issued_at`` (the edition's Unix time; default now) starts its
        age."""
        key = base64_encode(variant_key.encode()).decode()
        payload = f"{edition_id}.{subscriber_id}.{key}".encode()
        stamp = int(time.time()) if issued_at is None else issued_at
        return f"{self._base_url}/web/{self._signer.sign_at(payload, stamp).decode()}"

    def verify(self, token: str) -> WebVersionTarget:
        """What a token names; InputError if forged, garbled or expired."""
        try:
            payload = self._signer.unsign(token, max_age=self._max_age).decode()
            edition_id, subscriber_id, key = payload.split(".")
            target = WebVersionTarget(int(edition_id), base64_decode(key).decode(),
                                      int(subscriber_id))
        except SignatureExpired as exc:
            raise InputError("this link has expired",
                             hint="use the link in a more recent email") from exc
        except (BadSignature, ValueError, UnicodeDecodeError) as exc:
            raise InputError("this link is not valid") from exc
        return target
