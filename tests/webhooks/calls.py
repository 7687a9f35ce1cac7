"""The calls a provider makes to our webhook, as plain values, and the test keys that sign them.

A :class:`Call` is a body and headers; a :class:`Driver` (one per provider, in
:mod:`webhooks.drivers`) builds a provider's genuine calls and its forgeries. Keys are made
once per test session (cached): generating RSA keys is slow.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


PROVIDERS = ("postmark", "sendgrid", "mailgun", "resend", "ses")
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "correct horse battery staple"
MAILGUN_KEY = "key-5f2b8c1e9a7d4b3c6e0f1a2b3c4d5e6f"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-test-signing-secret-32by").decode()
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:digest-ses-notifications"
CERT_URL = ("https://sns.us-east-1.amazonaws.com/"
            "SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem")
SOFT_BOUNCE_LIMIT = 3


# -- keys ------------------------------------------------------------------------------------

@cache
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """As SendGrid shows its verification key: base64 DER SubjectPublicKeyInfo."""
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


@cache
def other_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@cache
def sns_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@cache
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # quick to make


@cache
def sns_certificate_pem() -> bytes:
    """A self-signed certificate for sns.amazonaws.com holding the test key."""
    key = sns_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=30))
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM)


# -- calls as each provider makes them -------------------------------------------------------

@dataclass
class Call:
    body: bytes
    headers: dict[str, str]

    def with_headers(self, **changes: str | None) -> Call:
        headers = {**self.headers, **{k.replace("_", "-"): v for k, v in changes.items()}}
        return Call(self.body, {k: v for k, v in headers.items() if v is not None})


def iso(moment: datetime, *, digits: int = 3) -> str:
    """ISO 8601 in UTC with ``digits`` of fractional seconds (Postmark writes up to seven)."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0" * max(0, digits - 6)
    return text[:20 + digits] + "Z"


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def now_ts() -> str:
    return str(int(time.time()))


class Driver:
    """Builds one provider's genuine calls and its forgeries."""

    name: str

    def hard_bounce(self, email: str, *, when: datetime | None = None) -> Call: ...
    def soft_bounce(self, email: str, *, when: datetime) -> Call: ...
    def complaint(self, email: str) -> Call: ...
    def delivered(self, email: str, *, when: datetime) -> Call: ...

    def forgeries(self, email: str) -> list[tuple[str, Call, int]]:
        """(what, call, expected status): calls that are not the provider's."""
        raise NotImplementedError

    def malformed(self) -> list[tuple[str, Call]]:
        """Calls that pass verification but whose body is not what the provider sends."""
        raise NotImplementedError
