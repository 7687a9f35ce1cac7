"""Who may use the editors' desk: the password, the session cookie, CSRF tokens, login limits.

Invariants: with no ``[web] editor_password`` and no ``editor_password_hash`` the desk does not
exist (every /editor/ URL is 404). A session is a cookie signed with the web secret key
(itsdangerous), HttpOnly, SameSite=Strict, expiring after ``SESSION_HOURS``; it names the
password it was opened with (a fingerprint), so changing the password ends every session. Every
POST carries a CSRF token derived from the session (or, for the login form, from a cookie of its
own) and compared in constant time. Login attempts are limited per client address (the
sliding window of :mod:`digest.web.client_limit`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from digest.config import SCRYPT_HASH, WebConfig

SESSION_COOKIE = "digest_editor"
LOGIN_COOKIE = "digest_editor_login"
SESSION_HOURS = 12
# Login attempts allowed per client address in the window; then 429 until the window moves on.
LOGIN_ATTEMPTS = 10
LOGIN_WINDOW_SECONDS = 300.0


class Password:
    """The configured editor password: plain (compared in constant time) or a hash."""

    def __init__(self, plain: str, hashed: str) -> None:
        self.plain, self.hashed = plain, hashed

    @classmethod
    def of(cls, web: WebConfig) -> Password | None:
        plain = web.editor_password.get_secret_value()
        hashed = web.editor_password_hash.get_secret_value()
        return cls(plain, hashed) if plain or hashed else None

    @property
    def fingerprint(self) -> str:
        """Names the password without revealing it: sessions end when it changes."""
        return hashlib.sha256(f"{self.plain}\0{self.hashed}".encode()).hexdigest()[:16]

    def matches(self, given: str) -> bool:
        if self.hashed:
            return verify_hash(self.hashed, given)
        return hmac.compare_digest(self.plain.encode(), given.encode())


def verify_hash(hashed: str, given: str) -> bool:
    match = SCRYPT_HASH.match(hashed)
    if match:
        n, r, p, salt, digest = match.groups()
        computed = hashlib.scrypt(given.encode(), salt=salt.encode(), n=int(n), r=int(r),
                                  p=int(p), maxmem=256 * 1024 * 1024, dklen=len(digest) // 2)
        return hmac.compare_digest(computed.hex(), digest)
    try:
        return PasswordHasher().verify(hashed, given)
    except (VerificationError, InvalidHashError):
        return False


def hash_password(password: str) -> str:
    """An argon2id hash for ``[web] editor_password_hash``."""
    return PasswordHasher().hash(password)


@dataclass
class Sessions:
    """Signs and reads the desk's session cookie; derives each session's CSRF token."""

    secret_key: str
    password: Password

    def __post_init__(self) -> None:
        self._serializer = URLSafeTimedSerializer(self.secret_key, salt="digest.editor.session")
        self._csrf_key = hmac.new(self.secret_key.encode(), b"digest.editor.csrf",
                                  hashlib.sha256).digest()

    def new(self) -> tuple[str, str]:
        """A fresh session: (cookie value, session id)."""
        session_id = secrets.token_urlsafe(18)
        return self._serializer.dumps({"sid": session_id,
                                       "pw": self.password.fingerprint}), session_id

    def read(self, cookie: str | None) -> str | None:
        """The session id of a valid, unexpired cookie for the current password; else None."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_HOURS * 3600)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("pw") != self.password.fingerprint:
            return None
        session_id = data.get("sid")
        return session_id if isinstance(session_id, str) and session_id else None

    @staticmethod
    def new_login_token() -> str:
        """The login form's CSRF token, kept in a cookie of its own (double submit)."""
        return secrets.token_urlsafe(18)

    @staticmethod
    def same(expected: str, given: str) -> bool:
        return bool(expected) and hmac.compare_digest(expected.encode(), given.encode())

    def csrf_token(self, session_id: str) -> str:
        return hmac.new(self._csrf_key, session_id.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session_id: str, given: str) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf_token(session_id), given)
