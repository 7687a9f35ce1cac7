"""Amazon SES bounce, complaint and delivery notifications, delivered by SNS over HTTPS.

SNS posts a JSON envelope signed with RSA: SignatureVersion 1 is SHA1withRSA, 2 is
SHA256withRSA (PKCS#1 v1.5), over ``name\\nvalue\\n`` for fixed keys in a fixed order that depends
on the message Type (see :data:`SIGNED_KEYS`). The key is in the X.509 certificate at
``SigningCertURL``; we fetch it only over HTTPS from ``sns.<region>.amazonaws.com`` (``.com.cn``
in China) — the region of ``[ses] sns_topic_arn`` — and keep it by URL. Messages from any other
topic are refused before anything is fetched.

A ``SubscriptionConfirmation`` (sent once, when the subscription is created) is confirmed by
GETting its ``SubscribeURL`` after the signature checks. A ``Notification`` carries SES's own
JSON in ``Message``: ``notificationType`` (identity notifications) or ``eventType``
(configuration-set event publishing) Bounce, Complaint or Delivery.

SNS's "raw message delivery" must stay off for this subscription: without the envelope there is
no signature, and such calls are refused (401).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from digest.transports.settings import SesConfig
from digest.errors import ConfigError
from digest.web.webhooks.base import WebhookMalformed, WebhookRejected, WebhookRequest
from digest.web.webhooks.common import address, event_id, json_or_none, parse_time, text
from subscribers.suppressions import AddressEvent, EventKind

log = logging.getLogger(__name__)

PROVIDER = "ses"

# The keys signed, in this order, for each message Type (AWS: "Verifying the signatures of
# Amazon SNS messages"). Subject is signed only when the message has one.
SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}
OPTIONAL_KEYS = frozenset({"Subject"})
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}

SNS_HOST = re.compile(r"sns\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?")
TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):\d+:[A-Za-z0-9_.-]+")
MAX_CERTIFICATE_BYTES = 64 * 1024
MAX_CACHED_CERTIFICATES = 32   # SNS rotates its certificate every few years; this is plenty

BOUNCE_KINDS = {"Permanent": EventKind.HARD_BOUNCE, "Transient": EventKind.SOFT_BOUNCE,
                "Undetermined": EventKind.SOFT_BOUNCE}

Fetch = Callable[[str], bytes]


def http_get(url: str, *, timeout: float = 10.0) -> bytes:
    """GET a URL and return its body; raise httpx.HTTPError on any failure or a non-2xx."""
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        with client.stream("GET", url) as response:
            response.raise_for_status()
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_CERTIFICATE_BYTES:
                    raise httpx.HTTPError(f"{url}: more than {MAX_CERTIFICATE_BYTES} bytes")
            return body


class SesWebhook:
    provider = PROVIDER

    def __init__(self, topic_arn: str, *, fetch_certificate: Fetch = http_get,
                 confirm_subscription: Fetch = http_get) -> None:
        match = TOPIC_ARN.fullmatch(topic_arn)
        if match is None:
            raise ConfigError(f"[ses] sns_topic_arn = {topic_arn!r} is not an SNS topic ARN",
                              hint="copy the topic's ARN from the SNS console, e.g. "
                                   "arn:aws:sns:us-east-1:123456789012:ses-bounces")
        self.topic_arn = topic_arn
        self._region = match.group(1)
        self._fetch_certificate = fetch_certificate
        self._confirm_subscription = confirm_subscription
        self._certificates: dict[str, rsa.RSAPublicKey] = {}
        self._lock = threading.Lock()

    # -- verify ---------------------------------------------------------------------------

    def verify(self, request: WebhookRequest) -> None:
        message = json_or_none(request.body)
        if not isinstance(message, dict) or not message.get("Signature"):
            raise WebhookRejected(401, "not a signed SNS message")
        if message.get("TopicArn") != self.topic_arn:
            raise WebhookRejected(403, f"not from the configured topic ({self.topic_arn})")
        version = message.get("SignatureVersion")
        algorithm = HASHES.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise WebhookRejected(403, f"unknown SNS SignatureVersion {version!r}")
        signed = string_to_sign(message)
        if signed is None:
            raise WebhookRejected(403, "an SNS message without the fields its signature covers")
        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise WebhookRejected(403, "the SNS signature is not base64") from None
        key = self._public_key(message.get("SigningCertURL"))
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise WebhookRejected(403, "the SNS signature does not match the message") from None

    def _public_key(self, url: object) -> rsa.RSAPublicKey:
        if not isinstance(url, str) or not self.is_sns_url(url, path_suffix=".pem"):
            raise WebhookRejected(403, f"SigningCertURL {url!r} is not an https URL of SNS in "
                                       f"the topic's region")
        with self._lock:
            cached = self._certificates.get(url)
        if cached is not None:
            return cached
        try:
            pem = self._fetch_certificate(url)
        except Exception as exc:  # network, TLS, HTTP status: we cannot verify, SNS may retry
            log.warning("webhook provider=ses could not fetch the signing certificate %s: %s",
                        url, exc)
            raise WebhookRejected(503, "could not fetch the SNS signing certificate") from None
        try:
            key = x509.load_pem_x509_certificate(pem).public_key()
        except ValueError:
            raise WebhookRejected(403, "SigningCertURL did not give a PEM certificate") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise WebhookRejected(403, "the SNS signing certificate has no RSA key")
        with self._lock:
            if len(self._certificates) >= MAX_CACHED_CERTIFICATES:
                self._certificates.pop(next(iter(self._certificates)))
            self._certificates[url] = key
        return key

    def is_sns_url(self, url: str, *, path_suffix: str = "") -> bool:
        """An https URL on SNS's host for the configured topic's region."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return False
        host = SNS_HOST.fullmatch(parts.hostname or "")
        return (parts.scheme == "https" and host is not None and port in (None, 443)
                and not parts.username and not parts.password
                and host.group(1) == self._region
                and parts.path.endswith(path_suffix))

    # -- parse ----------------------------------------------------------------------------

    def parse(self, request: WebhookRequest) -> list[AddressEvent]:
        message = json.loads(request.body)   # verify() read it already
        kind = message.get("Type")
        if kind == "SubscriptionConfirmation":
            self._confirm(message)
            return []
        if kind != "Notification":
            log.info("webhook provider=ses type=%s topic=%s: nothing to record", kind,
                     self.topic_arn)
            return []
        return self.notification_events(message, request.received_at)

    def _confirm(self, message: dict[str, Any]) -> None:
        url = message.get("SubscribeURL")
        if not isinstance(url, str) or not self.is_sns_url(url):
            raise WebhookMalformed("a SubscriptionConfirmation without an SNS SubscribeURL")
        # The URL carries the confirmation token, and SNS sends this message once: on failure
        # the log line is what lets an admin confirm by hand.
        try:
            self._confirm_subscription(url)
        except Exception as exc:
            log.error("webhook provider=ses could not confirm the subscription to %s (%s); "
                      "open this URL to confirm it: %s", self.topic_arn, exc, url)
            raise
        log.info("webhook provider=ses confirmed the subscription to %s", self.topic_arn)

    def notification_events(self, message: dict[str, Any],
                            received_at: float) -> list[AddressEvent]:
        content = json_or_none(message.get("Message", "").encode())
        if not isinstance(content, dict):
            # SES's own set-up notices ("Successfully validated SNS topic for Amazon SES event
            # publishing.") are plain text.
            log.info("webhook provider=ses a notification that is not SES JSON: %.80r",
                     message.get("Message"))
            return []
        kind = content.get("notificationType") or content.get("eventType")
        base_id = message.get("MessageId")
        if kind == "Bounce":
            bounce = _object(content, "bounce")
            bounce_type = bounce.get("bounceType")
            event_kind = BOUNCE_KINDS.get(bounce_type, EventKind.SOFT_BOUNCE)
            detail = " ".join(p for p in ("bounce", text(bounce_type),
                                          text(bounce.get("bounceSubType"))) if p)
            return self._events(bounce, "bouncedRecipients", event_kind, detail, base_id,
                                content, received_at)
        if kind == "Complaint":
            complaint = _object(content, "complaint")
            feedback = complaint.get("complaintFeedbackType")
            if feedback == "not-spam":
                return []   # the recipient said it is *not* spam
            detail = " ".join(p for p in ("complaint", text(feedback)) if p)
            return self._events(complaint, "complainedRecipients", EventKind.COMPLAINT, detail,
                                base_id, content, received_at)
        if kind == "Delivery":
            delivery = _object(content, "delivery")
            recipients = delivery.get("recipients")
            if not isinstance(recipients, list):
                raise WebhookMalformed("a Delivery notification without delivery.recipients")
            addresses = [a for a in (address(r) for r in recipients) if a]
            occurred = parse_time(delivery.get("timestamp"), received_at)
            return [AddressEvent(a, EventKind.DELIVERED, PROVIDER, "delivered",
                                 event_id(base_id, a), occurred) for a in addresses]
        return []   # Send, Reject, Open, Click, DeliveryDelay, AmazonSnsSubscriptionSucceeded…

    def _events(self, block: dict[str, Any], key: str, kind: EventKind, detail: str,
                base_id: object, content: dict[str, Any],
                received_at: float) -> list[AddressEvent]:
        recipients = block.get(key)
        if not isinstance(recipients, list) or not recipients:
            raise WebhookMalformed(f"a notification without {key}")
        occurred = parse_time(block.get("timestamp")
                              or _object(content, "mail", required=False).get("timestamp"),
                              received_at)
        events = []
        for recipient in recipients:
            email = address(recipient.get("emailAddress")) if isinstance(recipient, dict) else ""
            if not email:
                raise WebhookMalformed(f"an entry of {key} without emailAddress")
            diagnostic = text(recipient.get("diagnosticCode") or recipient.get("status"))
            events.append(AddressEvent(email, kind, PROVIDER,
                                       f"{detail}: {diagnostic}" if diagnostic else detail,
                                       event_id(base_id, email), occurred))
        return events


def string_to_sign(message: dict[str, Any]) -> bytes | None:
    """The bytes SNS signed for this message; None if a key it signs is missing."""
    keys = SIGNED_KEYS.get(message.get("Type"))  # type: ignore[arg-type]
    if keys is None:
        return None
    parts = []
    for key in keys:
        value = message.get(key)
        if value is None and key in OPTIONAL_KEYS:
            continue
        if not isinstance(value, str):
            return None
        parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode()


def _object(content: dict[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
    value = content.get(key)
    if isinstance(value, dict):
        return value
    if required:
        raise WebhookMalformed(f"a notification without its {key} object")
    return {}


def from_settings(settings: SesConfig, *, fetch_certificate: Fetch = http_get,
                confirm_subscription: Fetch = http_get) -> SesWebhook | None:
    topic_arn = settings.sns_topic_arn.strip()
    if not topic_arn:
        return None
    return SesWebhook(topic_arn, fetch_certificate=fetch_certificate,
                      confirm_subscription=confirm_subscription)
