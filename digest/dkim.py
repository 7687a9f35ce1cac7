"""DKIM signatures (RFC 6376) for the messages we build, and the DNS records to publish.

Signing is rsa-sha256 with ``c=relaxed/simple``: headers relaxed (they are refolded by relays),
the body simple — our bodies are quoted-printable, 7-bit, CRLF lines under 76 characters,
already in simple canonical form, so the body hash is one SHA-256 over the bytes as built.
The canonicalisation is written here, and the RSA signature made by ``cryptography``, because
dkimpy parses and re-canonicalises the whole message in Python for every signature (see
bench/dkim_sign.py for the figures). Tests verify every signature with dkimpy.

Signed headers (``h=``): :data:`SIGNED_HEADERS`, the ones a message of ours has. RFC 8058
requires List-Unsubscribe and List-Unsubscribe-Post to be signed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.errors import ConfigError

SIGNED_HEADERS = ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
                  "list-unsubscribe-post", "mime-version", "content-type")
_WSP_RUN = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def load(cls, domain: str, selector: str, pem: bytes, *, source: str) -> DkimKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: not an unencrypted PEM private key ({exc})",
                              hint="make one with `openssl genrsa -out dkim.pem 2048`") from None
        if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
            raise ConfigError(f"{source}: DKIM needs an RSA key of at least 1024 bits "
                              "(2048 recommended)",
                              hint="make one with `openssl genrsa -out dkim.pem 2048`")
        return cls(domain, selector, key)

    @classmethod
    def from_file(cls, domain: str, selector: str, path: Path) -> DkimKey:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"[dkim] private_key_file {path}: {exc.strerror}",
                              hint="point it at the PEM file, or set "
                                   "DIGEST_DKIM_PRIVATE_KEY to the PEM text") from None
        return cls.load(domain, selector, pem, source=f"[dkim] private_key_file {path}")

    def public_key_base64(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.b64encode(der).decode("ascii")


class DkimSigner:
    def __init__(self, key: DkimKey) -> None:
        self.key = key
        self._prefix = (f"v=1; a=rsa-sha256; c=relaxed/simple; d={key.domain}; "
                        f"s={key.selector};")

    def sign(self, message: bytes, *, now: int | None = None) -> bytes:
        """``message`` with a DKIM-Signature header in front of it."""
        head, separator, body = message.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a message needs a blank line between its header and body")
        headers = _header_fields(head + b"\r\n")
        present = [name for name in SIGNED_HEADERS if name in headers]
        body_hash = base64.b64encode(hashlib.sha256(_simple_body(body)).digest()).decode()
        stamp = int(time.time()) if now is None else now
        value = (f"{self._prefix} t={stamp};\r\n\th={':'.join(present)};\r\n"
                 f"\tbh={body_hash};\r\n\tb=")
        signed = b"".join(_relaxed(name, headers[name]) for name in present)
        # The signature header itself is signed last, with an empty b= and no CRLF.
        signed += _relaxed("dkim-signature", value.encode("ascii"), last=True)
        signature = self.key.private_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        b64 = base64.b64encode(signature).decode("ascii")
        folded = "\r\n\t".join(b64[i:i + 72] for i in range(0, len(b64), 72))
        return f"DKIM-Signature: {value}{folded}\r\n".encode("ascii") + message


def _header_fields(head: bytes) -> dict[str, bytes]:
    """The last occurrence of each header, unfolded value (as signers pick from the bottom)."""
    fields: dict[str, bytes] = {}
    for line in _FOLD.sub(b"", head).split(b"\r\n"):
        if not line:
            continue
        name, _, value = line.partition(b":")
        fields[name.strip().lower().decode("ascii")] = value
    return fields


def _relaxed(name: str, value: bytes, *, last: bool = False) -> bytes:
    canonical = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip()
    return name.encode("ascii") + b":" + canonical + (b"" if last else b"\r\n")


def _simple_body(body: bytes) -> bytes:
    stripped = body.rstrip(b"\r\n")
    return stripped + b"\r\n" if stripped else b"\r\n"


def dns_records(key: DkimKey, *, sending_domain: str, report_address: str = "") -> list[
        tuple[str, str, str]]:
    """(name, type, value) of the SPF, DKIM and DMARC records to publish."""
    rua = f" rua=mailto:{report_address};" if report_address else ""
    return [
        (sending_domain, "TXT", "v=spf1 mx a ~all"),
        (f"{key.selector}._domainkey.{key.domain}", "TXT",
         f"v=DKIM1; k=rsa; p={key.public_key_base64()}"),
        (f"_dmarc.{key.domain}", "TXT", f"v=DMARC1; p=none;{rua} adkim=r; aspf=r"),
    ]
