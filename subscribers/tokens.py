"""Signed, expiring tokens for unsubscribe and preferences links.

A token names a subscriber and a list and is signed with ``web.secret_key`` (itsdangerous, HMAC
with a timestamp). Signing costs a few microseconds, so it is done per message.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner

from digest.errors import InputError

UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"


@dataclass(frozen=True)
class TokenSubject:
    subscriber_id: int
    list_id: int


class TokenSigner:
    def __init__(self, secret_key: str, *, purpose: str = UNSUBSCRIBE,
                 max_age_days: int = 365) -> None:
        if not secret_key:
            raise InputError("no secret key to sign links with",
                             hint="set web.secret_key or DIGEST_SECRET_KEY")
        self._signer = TimestampSigner(secret_key, salt=f"digest.{purpose}")
        self._max_age = max_age_days * 86400

    def sign(self, subscriber_id: int, list_id: int) -> str:
        return self._signer.sign(f"{subscriber_id}.{list_id}".encode()).decode()

    def verify(self, token: str) -> TokenSubject:
        """The subscriber and list a token names; InputError if forged, garbled or expired."""
        try:
            payload = self._signer.unsign(token, max_age=self._max_age).decode()
            subscriber_id, list_id = (int(part) for part in payload.split("."))
        except SignatureExpired as exc:
            raise InputError("this link has expired",
                             hint="use the link in a more recent email") from exc
        except (BadSignature, ValueError) as exc:
            raise InputError("this link is not valid") from exc
        return TokenSubject(subscriber_id, list_id)
