"""Signed, expiring "View in your browser" links: one per reader and edition.

A token names an edition, a variant key (``full``, ``teaser``, ``teaser.<tier>``) and a
subscriber; it is signed with the web secret key (itsdangerous, HMAC with a timestamp) and
expires after ``[web] link_max_age_days``. Whoever holds the link sees exactly that reader's
variant, as it was mailed — nothing more: the token cannot be changed to name another edition,
variant or reader without the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from digest.errors import InputError


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
        self._serializer = URLSafeTimedSerializer(secret_key, salt="digest.webversion")
        self._base_url = base_url.rstrip("/")
        self._max_age = max_age_days * 86400

    def url(self, edition_id: int, variant_key: str, subscriber_id: int) -> str:
        token = self._serializer.dumps([edition_id, variant_key, subscriber_id])
        return f"{self._base_url}/web/{token}"

    def verify(self, token: str) -> WebVersionTarget:
        """What a token names; InputError if forged, garbled or expired."""
        try:
            edition_id, key, subscriber_id = self._serializer.loads(token, max_age=self._max_age)
            if not (isinstance(edition_id, int) and isinstance(key, str)
                    and isinstance(subscriber_id, int)):
                raise ValueError("malformed")
        except SignatureExpired as exc:
            raise InputError("this link has expired",
                             hint="use the link in a more recent email") from exc
        except (BadSignature, ValueError, TypeError) as exc:
            raise InputError("this link is not valid") from exc
        return WebVersionTarget(edition_id, key, subscriber_id)
