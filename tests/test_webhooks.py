"""Provider webhooks end to end: real HTTP to the real app under uvicorn, on SQLite and PostgreSQL.

Every provider's calls are built the way the provider documents them (payload shapes from its
examples, signatures by its scheme) and signed here with test keys: an ECDSA P-256 key for
SendGrid, an RSA key and a self-signed certificate for SNS (served by an injected fetcher in
place of sns.<region>.amazonaws.com), HMAC secrets for Mailgun and Resend, Basic credentials for
Postmark. The published test vectors of SendGrid, Svix and a message really signed by SNS check
that the schemes are the providers' and not only agreed with ourselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine, select
from sqlmodel import Session

from digest.app import App
from digest.errors import ConfigError
from digest.web.app import create_app
from digest.web.webhooks.routes import webhooks_from
from digest.web.webhooks import mailgun, postmark, resend, sendgrid, ses
from digest.web.webhooks.base import WebhookRejected, WebhookRequest
from subscribers.models import BounceEvent, Subscriber, Subscription, Suppression
from subscribers.suppressions import EventKind
from conftest import make_config
from support.asgi_server import AsgiServer
from support.http_server import HttpServer, Response

PROVIDERS = ("postmark", "sendgrid", "mailgun", "resend", "ses")
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "correct horse battery staple"
MAILGUN_KEY = "key-5f2b8c1e9a7d4b3c6e0f1a2b3c4d5e6f"
RESEND_SECRET = "whsec_" + base64.b64encode(b"resend-test-signing-secret-32by").decode()
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:digest-ses-notifications"
CERT_URL = ("https://sns.us-east-1.amazonaws.com/"
            "SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem")
SOFT_BOUNCE_LIMIT = 3
_numbers = itertools.count(1)


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


class PostmarkDriver(Driver):
    name = "postmark"

    def call(self, payload: dict | bytes, *, username: str = POSTMARK_USER,
             password: str = POSTMARK_PASSWORD) -> Call:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return Call(body, {"Content-Type": "application/json", "Authorization": f"Basic {token}"})

    @staticmethod
    def bounce(email: str, *, bounce_type: str = "HardBounce", type_code: int = 1,
               name: str = "Hard bounce", inactive: bool = True,
               when: datetime | None = None, record_type: str = "Bounce",
               description: str = "The server was unable to deliver your message (ex: unknown "
                                  "user, mailbox not found).") -> dict:
        # postmarkapp.com/developer/webhooks/bounce-webhook
        return {"RecordType": record_type, "ID": 4323372036854775800 + next(_numbers),
                "Type": bounce_type, "TypeCode": type_code, "Name": name, "Tag": "Test",
                "MessageID": str(uuid.uuid4()), "ServerID": 23, "MessageStream": "broadcast",
                "Description": description, "Details": "Test bounce details", "Email": email,
                "From": "digest@news.example.com", "BouncedAt": iso(when or ago(minutes=1)),
                "DumpAvailable": True, "Inactive": inactive, "CanActivate": True,
                "Subject": "Lanternport Ledger — 25 November 2026", "Content": "Return-Path:...",
                "Metadata": {"edition": "42"}}

    @staticmethod
    def subscription_change(email: str, reason: str | None, *, suppress: bool = True) -> dict:
        # postmarkapp.com/developer/webhooks/subscription-change-webhook
        return {"RecordType": "SubscriptionChange", "MessageID": str(uuid.uuid4()),
                "ServerID": 123456, "MessageStream": "broadcast",
                "ChangedAt": iso(ago(minutes=1), digits=6), "Recipient": email,
                "Origin": "Recipient", "SuppressSending": suppress, "SuppressionReason": reason,
                "Tag": "my-tag", "Metadata": {"example": "value"}}

    def hard_bounce(self, email, *, when=None):
        return self.call(self.bounce(email, when=when))

    def soft_bounce(self, email, *, when):
        return self.call(self.bounce(email, bounce_type="SoftBounce", type_code=4096,
                                     name="Soft bounce", inactive=False, when=when,
                                     description="Unable to temporarily deliver this email."))

    def complaint(self, email):
        return self.call(self.bounce(email, record_type="SpamComplaint",
                                     bounce_type="SpamComplaint", type_code=100001,
                                     name="Spam complaint", description=""))

    def delivered(self, email, *, when):
        # postmarkapp.com/developer/webhooks/delivery-webhook
        return self.call({"RecordType": "Delivery", "ServerID": 23, "MessageStream": "broadcast",
                          "MessageID": str(uuid.uuid4()), "Recipient": email, "Tag": "digest",
                          "DeliveredAt": iso(when, digits=7), "Details": "Test delivery webhook "
                          "details", "Metadata": {"edition": "42"}})

    def forgeries(self, email):
        genuine = self.bounce(email)
        return [
            ("no credentials", self.call(genuine).with_headers(Authorization=None), 401),
            ("another scheme", self.call(genuine).with_headers(Authorization="Bearer x"), 401),
            ("wrong password", self.call(genuine, password="Tr0ub4dor&3"), 403),
            ("wrong user name", self.call(genuine, username="postmark"), 403),
            ("password as user name", self.call(genuine, username=POSTMARK_PASSWORD,
                                                password=""), 403),
            ("credentials not base64",
             self.call(genuine).with_headers(Authorization="Basic not/base64!"), 403),
        ]

    def malformed(self):
        bounce = self.bounce("x@example.com")
        del bounce["Email"]
        return [("a bounce without Email", self.call(bounce)),
                ("not JSON", self.call(b"RecordType=Bounce")),
                ("a JSON array", self.call(b"[]"))]


class SendgridDriver(Driver):
    name = "sendgrid"

    def call(self, *events: dict, body: bytes | None = None,
             key: ec.EllipticCurvePrivateKey | None = None, timestamp: str | None = None) -> Call:
        body = json.dumps(list(events)).encode() if body is None else body
        timestamp = timestamp or now_ts()
        signature = (key or sendgrid_key()).sign(timestamp.encode() + body,
                                                 ec.ECDSA(hashes.SHA256()))
        return Call(body, {"Content-Type": "application/json",
                           "X-Twilio-Email-Event-Webhook-Signature":
                               base64.b64encode(signature).decode(),
                           "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})

    @staticmethod
    def event(email: str, event: str, *, when: datetime | None = None, **fields: Any) -> dict:
        # twilio.com/docs/sendgrid/for-developers/tracking-events/event (example payloads)
        return {"email": email, "timestamp": int((when or ago(minutes=1)).timestamp()),
                "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>", "event": event,
                "category": "cat facts",
                "sg_event_id": base64.b64encode(secrets.token_bytes(16)).decode(),
                "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
                **fields}

    def hard_bounce(self, email, *, when=None):
        return self.call(self.event(email, "bounce", when=when, reason="500 unknown recipient",
                                    status="5.0.0", type="bounce",
                                    bounce_classification="Invalid Address"))

    def soft_bounce(self, email, *, when):
        return self.call(self.event(email, "bounce", when=when, type="blocked",
                                    reason="421 4.7.0 Try again later", status="4.7.0",
                                    bounce_classification="Reputation"))

    def complaint(self, email):
        return self.call(self.event(email, "spamreport"))

    def delivered(self, email, *, when):
        return self.call(self.event(email, "delivered", when=when, response="250 OK"))

    def forgeries(self, email):
        genuine = self.hard_bounce(email)
        altered = genuine.body.replace(b"5.0.0", b"5.0.1")
        stale = str(int(time.time()) - 600 - 120)
        future = str(int(time.time()) + 3600)
        return [
            ("unsigned", genuine.with_headers(X_Twilio_Email_Event_Webhook_Signature=None,
                                              X_Twilio_Email_Event_Webhook_Timestamp=None), 401),
            ("signed by another key", self.call(body=genuine.body, key=other_ec_key()), 403),
            ("body altered after signing", Call(altered, genuine.headers), 403),
            ("timestamp altered after signing", genuine.with_headers(
                X_Twilio_Email_Event_Webhook_Timestamp=str(int(time.time()) - 1)), 403),
            ("stale timestamp", self.call(body=genuine.body, timestamp=stale), 403),
            ("timestamp an hour ahead", self.call(body=genuine.body, timestamp=future), 403),
            ("signature not base64", genuine.with_headers(
                X_Twilio_Email_Event_Webhook_Signature="%%%"), 403),
        ]

    def malformed(self):
        return [("an object, not an array", self.call(body=b'{"event": "bounce"}')),
                ("a bounce without email", self.call({"event": "bounce", "type": "bounce",
                                                      "sg_event_id": "x"})),
                ("not JSON", self.call(body=b"email=x@example.com"))]


class MailgunDriver(Driver):
    name = "mailgun"

    def call(self, event_data: dict | None, *, key: str = MAILGUN_KEY,
             timestamp: str | None = None, token: str | None = None) -> Call:
        timestamp = timestamp or now_ts()
        token = token or secrets.token_hex(25)
        signature = hmac.new(key.encode(), (timestamp + token).encode(),
                             hashlib.sha256).hexdigest()
        payload: dict = {"signature": {"timestamp": timestamp, "token": token,
                                       "signature": signature}}
        if event_data is not None:
            payload["event-data"] = event_data
        return Call(json.dumps(payload).encode(), {"Content-Type": "application/json"})

    @staticmethod
    def event(email: str, event: str, *, when: datetime | None = None, **fields: Any) -> dict:
        # documentation.mailgun.com/docs/mailgun/user-manual/webhooks/webhook-payloads
        domain = email.rpartition("@")[2]
        return {"event": event, "id": base64.urlsafe_b64encode(secrets.token_bytes(16))
                .decode().rstrip("="), "timestamp": (when or ago(minutes=1)).timestamp(),
                "recipient": email, "recipient-domain": domain, "tags": ["digest"],
                "campaigns": [], "user-variables": {"edition": "42"},
                "flags": {"is-routed": False, "is-authenticated": True,
                          "is-system-test": False, "is-test-mode": False},
                "envelope": {"sender": "digest@mg.news.example.com", "transport": "smtp",
                             "targets": email},
                "message": {"headers": {"to": email, "from": "digest@news.example.com",
                                        "subject": "Lanternport Ledger — 25 November 2026",
                                        "message-id": "20261125060000.1.ABC@news.example.com"},
                            "attachments": [], "size": 4211},
                **fields}

    def hard_bounce(self, email, *, when=None):
        return self.call(self.event(
            email, "failed", when=when, severity="permanent", reason="bounce",
            **{"log-level": "error", "delivery-status": {
                "attempt-no": 1, "code": 550, "session-seconds": 1.2, "description": "",
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "tls": True, "mx-host": "mx.example.com"}}))

    def soft_bounce(self, email, *, when):
        return self.call(self.event(
            email, "failed", when=when, severity="temporary", reason="generic",
            **{"log-level": "warn", "delivery-status": {
                "attempt-no": 1, "code": 452, "retry-seconds": 600, "session-seconds": 0.4,
                "description": "", "message": "4.2.2 The email account that you tried to "
                                              "reach is over quota."}}))

    def complaint(self, email):
        return self.call(self.event(email, "complained", **{"log-level": "warn"}))

    def delivered(self, email, *, when):
        return self.call(self.event(email, "delivered", when=when, **{
            "log-level": "info", "delivery-status": {"code": 250, "message": "OK",
                                                     "attempt-no": 1, "description": ""}}))

    def forgeries(self, email):
        data = self.event(email, "failed", severity="permanent", reason="bounce")
        genuine = json.loads(self.call(data).body)
        def tampered(**signature: str) -> Call:
            payload = {**genuine, "signature": {**genuine["signature"], **signature}}
            return Call(json.dumps(payload).encode(), {"Content-Type": "application/json"})
        return [
            ("unsigned", Call(json.dumps({"event-data": data}).encode(),
                              {"Content-Type": "application/json"}), 401),
            ("form fields, not JSON", Call(b"event=failed&recipient=" + email.encode(),
                                           {"Content-Type": "application/x-www-form-urlencoded"}),
             401),
            ("signed with another key", self.call(data, key="key-not-ours"), 403),
            ("forged signature", tampered(signature="0" * 64), 403),
            ("timestamp altered after signing",
             tampered(timestamp=str(int(genuine["signature"]["timestamp"]) - 1)), 403),
            ("token altered after signing", tampered(token=secrets.token_hex(25)), 403),
            ("stale timestamp", self.call(data, timestamp=str(int(time.time()) - 720)), 403),
        ]

    def malformed(self):
        bounce = self.event("x@example.com", "failed", severity="permanent")
        del bounce["recipient"]
        return [("no event-data", self.call(None)),
                ("a failure without recipient", self.call(bounce))]


class ResendDriver(Driver):
    name = "resend"

    def call(self, payload: dict | bytes, *, secret: str = RESEND_SECRET,
             message_id: str | None = None, timestamp: str | None = None) -> Call:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        message_id = message_id or f"msg_{secrets.token_urlsafe(18)}"
        timestamp = timestamp or now_ts()
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signature = base64.b64encode(hmac.new(key, f"{message_id}.{timestamp}.".encode() + body,
                                              hashlib.sha256).digest()).decode()
        return Call(body, {"Content-Type": "application/json", "svix-id": message_id,
                           "svix-timestamp": timestamp, "svix-signature": f"v1,{signature}"})

    @staticmethod
    def event(event_type: str, to: list[str], *, when: datetime | None = None,
              **data: Any) -> dict:
        # resend.com/docs/webhooks/emails/bounced (and the other email.* pages)
        moment = when or ago(minutes=1)
        return {"type": event_type, "created_at": iso(moment),
                "data": {"broadcast_id": str(uuid.uuid4()),
                         "created_at": moment.isoformat(), "email_id": str(uuid.uuid4()),
                         "from": "Ledger Digest <digest@news.example.com>", "to": to,
                         "subject": "Lanternport Ledger — 25 November 2026",
                         "template_id": str(uuid.uuid4()), "tags": {"category": "digest"},
                         **data}}

    def bounce(self, email: str, bounce_type: str, sub_type: str, *,
               when: datetime | None = None) -> dict:
        return self.event("email.bounced", [email], when=when, bounce={
            "message": "The recipient's email address is on the suppression list because it "
                       "has a recent history of producing hard bounces.",
            "subType": sub_type, "type": bounce_type})

    def hard_bounce(self, email, *, when=None):
        return self.call(self.bounce(email, "Permanent", "Suppressed", when=when))

    def soft_bounce(self, email, *, when):
        return self.call(self.bounce(email, "Transient", "MailboxFull", when=when))

    def complaint(self, email):
        return self.call(self.event("email.complained", [email]))

    def delivered(self, email, *, when):
        return self.call(self.event("email.delivered", [email], when=when))

    def forgeries(self, email):
        genuine = self.hard_bounce(email)
        stale = str(int(time.time()) - 300 - 120)
        return [
            ("unsigned", genuine.with_headers(svix_id=None, svix_timestamp=None,
                                              svix_signature=None), 401),
            ("no signature header", genuine.with_headers(svix_signature=None), 401),
            ("signed with another secret", self.call(
                genuine.body, secret="whsec_" + base64.b64encode(b"x" * 24).decode()), 403),
            ("body altered after signing",
             Call(genuine.body.replace(b"Permanent", b"Transient"), genuine.headers), 403),
            ("id altered after signing", genuine.with_headers(svix_id="msg_other"), 403),
            ("stale timestamp", self.call(genuine.body, timestamp=stale), 403),
            ("only unknown signature versions", genuine.with_headers(
                svix_signature=genuine.headers["svix-signature"].replace("v1,", "v2,")), 403),
        ]

    def malformed(self):
        bounce = self.bounce("x@example.com", "Permanent", "General")
        del bounce["data"]["to"]
        return [("not JSON", self.call(b"type=email.bounced")),
                ("a bounce without to", self.call(bounce))]


def sns_string_to_sign(envelope: dict) -> bytes:
    """Written from AWS's page on verifying SNS signatures, apart from the code under test."""
    if envelope["Type"] == "Notification":
        keys = ["Message", "MessageId", *(["Subject"] if "Subject" in envelope else []),
                "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{key}\n{envelope[key]}\n" for key in keys).encode()


class SesDriver(Driver):
    name = "ses"

    def sign(self, envelope: dict, *, version: str = "1",
             key: rsa.RSAPrivateKey | None = None) -> dict:
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or sns_key()).sign(sns_string_to_sign(envelope), padding.PKCS1v15(),
                                            algorithm)
        return {**envelope, "SignatureVersion": version,
                "Signature": base64.b64encode(signature).decode()}

    def envelope(self, message: dict | str, *, topic: str = TOPIC_ARN,
                 cert_url: str = CERT_URL, subject: str | None = None) -> dict:
        # docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html
        envelope = {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": topic,
                    "Message": message if isinstance(message, str) else json.dumps(message),
                    "Timestamp": iso(ago(seconds=5)), "SigningCertURL": cert_url,
                    "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
                                      f"&SubscriptionArn={topic}:{uuid.uuid4()}"}
        if subject is not None:
            envelope["Subject"] = subject
        return envelope

    def call(self, envelope: dict | bytes) -> Call:
        body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        headers = {"Content-Type": "text/plain; charset=UTF-8"}
        if isinstance(envelope, dict):
            headers.update({"x-amz-sns-message-type": str(envelope.get("Type")),
                            "x-amz-sns-message-id": str(envelope.get("MessageId")),
                            "x-amz-sns-topic-arn": str(envelope.get("TopicArn"))})
        return Call(body, headers)

    def signed(self, message: dict | str, *, version: str = "1", **envelope: Any) -> Call:
        return self.call(self.sign(self.envelope(message, **envelope), version=version))

    @staticmethod
    def mail(*destination: str, when: datetime | None = None) -> dict:
        return {"timestamp": iso(when or ago(minutes=1)), "source": "digest@news.example.com",
                "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/news.example.com",
                "sourceIp": "127.0.3.0", "sendingAccountId": "123456789012",
                "callerIdentity": "digest", "messageId": f"0100019{uuid.uuid4().hex}-000000",
                "destination": list(destination)}

    def bounce_message(self, *emails: str, bounce_type: str = "Permanent",
                       sub_type: str = "General", when: datetime | None = None,
                       key: str = "notificationType") -> dict:
        # docs.aws.amazon.com/ses/latest/dg/notification-examples.html
        moment = when or ago(minutes=1)
        status = "5.1.1" if bounce_type == "Permanent" else "4.2.2"
        return {key: "Bounce", "mail": self.mail(*emails, when=moment), "bounce": {
            "bounceType": bounce_type, "bounceSubType": sub_type,
            "reportingMTA": "dns; email.example.com", "timestamp": iso(moment),
            "feedbackId": f"00000138111222aa-{uuid.uuid4()}-000000", "remoteMtaIp": "127.0.2.0",
            "bouncedRecipients": [{"emailAddress": e, "status": status, "action": "failed",
                                   "diagnosticCode": f"smtp; 550 {status} <{e}>... User"}
                                  for e in emails]}}

    def complaint_message(self, *emails: str, feedback: str = "abuse") -> dict:
        moment = ago(minutes=1)
        return {"notificationType": "Complaint", "mail": self.mail(*emails), "complaint": {
            "userAgent": "AnyCompany Feedback Loop (V0.01)", "complaintFeedbackType": feedback,
            "complainedRecipients": [{"emailAddress": e} for e in emails],
            "arrivalDate": iso(moment), "timestamp": iso(moment),
            "feedbackId": f"000001378603177f-{uuid.uuid4()}-000000"}}

    def hard_bounce(self, email, *, when=None):
        return self.signed(self.bounce_message(email, when=when))

    def soft_bounce(self, email, *, when):
        return self.signed(self.bounce_message(email, bounce_type="Transient",
                                               sub_type="MailboxFull", when=when))

    def complaint(self, email):
        return self.signed(self.complaint_message(email))

    def delivered(self, email, *, when):
        return self.signed({"notificationType": "Delivery", "mail": self.mail(email, when=when),
                            "delivery": {"timestamp": iso(when), "recipients": [email],
                                         "processingTimeMillis": 546,
                                         "reportingMTA": "a8-70.smtp-out.amazonses.com",
                                         "smtpResponse": "250 ok:  Message 64111812 accepted",
                                         "remoteMtaIp": "127.0.2.0"}})

    def forgeries(self, email):
        envelope = self.sign(self.envelope(self.bounce_message(email)))
        def changed(**fields: Any) -> Call:
            return self.call({k: v for k, v in {**envelope, **fields}.items() if v is not None})
        other_topic = "arn:aws:sns:us-east-1:123456789012:someone-else"
        return [
            ("unsigned", changed(Signature=None), 401),
            ("not an SNS envelope", self.call(json.dumps(self.bounce_message(email)).encode()),
             401),
            ("signed by another key", self.call(self.sign(
                self.envelope(self.bounce_message(email)),
                key=other_rsa_key())), 403),
            ("Message altered after signing", changed(
                Message=envelope["Message"].replace("Permanent", "Transient")), 403),
            ("Subject added after signing", changed(Subject="hello"), 403),
            ("another topic, validly signed", self.signed(self.bounce_message(email),
                                                          topic=other_topic), 403),
            ("certificate on another host", self.signed(
                self.bounce_message(email),
                cert_url="https://sns.us-east-1.amazonaws.com.evil.example/x.pem"), 403),
            ("certificate over http", self.signed(
                self.bounce_message(email), cert_url=CERT_URL.replace("https:", "http:")), 403),
            ("certificate of another region", self.signed(
                self.bounce_message(email),
                cert_url=CERT_URL.replace("us-east-1", "eu-west-1")), 403),
            ("unknown SignatureVersion", changed(SignatureVersion="3"), 403),
            ("signature not base64", changed(Signature="%%%"), 403),
        ]

    def malformed(self):
        bounce = self.bounce_message("x@example.com")
        del bounce["bounce"]["bouncedRecipients"]
        complaint = self.complaint_message("x@example.com")
        del complaint["complaint"]
        return [("a bounce without bouncedRecipients", self.signed(bounce)),
                ("a complaint without its complaint object", self.signed(complaint))]


DRIVERS: dict[str, Driver] = {d.name: d for d in (PostmarkDriver(), SendgridDriver(),
                                                  MailgunDriver(), ResendDriver(), SesDriver())}


# -- the site under test ---------------------------------------------------------------------

@dataclass
class FakeSns:
    """Stands in for sns.<region>.amazonaws.com: serves the test certificate, records GETs."""

    certificate: bytes
    fetched: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    fail: bool = False

    def fetch_certificate(self, url: str) -> bytes:
        self.fetched.append(url)
        if self.fail:
            raise httpx.ConnectError("connection refused")
        return self.certificate

    def confirm(self, url: str) -> bytes:
        self.confirmed.append(url)
        return b"<ConfirmSubscriptionResponse/>"


@dataclass
class Site:
    url: str
    client: httpx.Client
    app: App
    engine: Engine
    sns: FakeSns

    def post(self, provider: str, call: Call) -> httpx.Response:
        return self.client.post(f"{self.url}/webhooks/{provider}", content=call.body,
                                headers=call.headers)

    def subscribe(self, *emails: str) -> None:
        for email in emails:
            self.app.subscribers.add(email, list_slug="morning")


@pytest.fixture(scope="module")
def server() -> Iterator[AsgiServer]:
    with AsgiServer() as server:
        yield server


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def configured(tmp_path: Path, database_url: str, **overrides: dict) -> Any:
    sections: dict = {
        "postmark": {"webhook_username": POSTMARK_USER, "webhook_password": POSTMARK_PASSWORD},
        "sendgrid": {"webhook_public_key": public_key_b64(sendgrid_key())},
        "mailgun": {"webhook_signing_key": MAILGUN_KEY},
        "resend": {"webhook_secret": RESEND_SECRET},
        "ses": {"sns_topic_arn": TOPIC_ARN},
        "bounces": {"soft_bounce_limit": SOFT_BOUNCE_LIMIT},
    }
    sections.update(overrides)
    return make_config(tmp_path, database_url, **sections)


def serve_site(server: AsgiServer, client: httpx.Client, tmp_path: Path, database_url: str,
               engine: Engine) -> Iterator[Site]:
    app = App(configured(tmp_path, database_url), engine=engine)
    sns = FakeSns(sns_certificate_pem())
    hooks = webhooks_from(app)
    assert sorted(hooks) == sorted(PROVIDERS)
    hooks["ses"] = ses.from_settings(app.config.ses, fetch_certificate=sns.fetch_certificate,
                                   confirm_subscription=sns.confirm)
    app.subscribers.create_list("morning", "Morning Briefing")
    with server.serving(create_app(app, webhooks=hooks)):
        yield Site(server.url, client, app, engine, sns)


@pytest.fixture
def site(server: AsgiServer, client: httpx.Client, tmp_path: Path, database_url: str,
         engine: Engine) -> Iterator[Site]:
    """The app with every provider configured, on SQLite and on PostgreSQL."""
    yield from serve_site(server, client, tmp_path, database_url, engine)


@pytest.fixture
def sqlite_site(server: AsgiServer, client: httpx.Client, tmp_path: Path, sqlite_url: str,
                sqlite_engine: Engine) -> Iterator[Site]:
    """The same on SQLite only, for checks where the database plays no part (verification,
    parsing) — PostgreSQL's per-test set-up would double their time for nothing."""
    yield from serve_site(server, client, tmp_path, sqlite_url, sqlite_engine)


@pytest.fixture(params=PROVIDERS)
def driver(request: pytest.FixtureRequest) -> Driver:
    return DRIVERS[request.param]


# -- reading the database --------------------------------------------------------------------

def suppression(engine: Engine, email: str) -> Suppression | None:
    with Session(engine) as session:
        return session.scalar(select(Suppression).where(Suppression.email_key == email.lower()))


def events_of(engine: Engine, email: str) -> list[BounceEvent]:
    with Session(engine) as session:
        return list(session.scalars(select(BounceEvent).where(
            BounceEvent.email_key == email.lower()).order_by(BounceEvent.created_at)))


def subscription_status(engine: Engine, email: str) -> str | None:
    with Session(engine) as session:
        return session.scalar(select(Subscription.status).join(
            Subscriber, Subscriber.id == Subscription.subscriber_id).where(
            Subscriber.email_key == email.lower()))


def snapshot(engine: Engine) -> tuple:
    with Session(engine) as session:
        return (sorted((e.email_key, e.kind, e.event_id) for e in session.scalars(
                    select(BounceEvent))),
                sorted((s.email_key, s.reason) for s in session.scalars(select(Suppression))),
                sorted((s.subscriber_id, s.status) for s in session.scalars(
                    select(Subscription))))


# -- every provider --------------------------------------------------------------------------

def test_a_signed_hard_bounce_suppresses_the_address_once_if_sent_twice(site, driver):
    site.subscribe("gone@example.com", "stays@example.com")
    call = driver.hard_bounce("Gone@Example.com")

    response = site.post(driver.name, call)

    assert response.status_code == 200, response.text
    assert response.json() == {"events": 1, "recorded": 1, "suppressed": 1, "duplicates": 0}
    row = suppression(site.engine, "gone@example.com")
    assert row is not None and row.reason == "hard-bounce"
    assert row.detail.startswith(f"{driver.name}: ")
    [event] = events_of(site.engine, "gone@example.com")
    assert (event.provider, event.kind) == (driver.name, EventKind.HARD_BOUNCE)
    assert event.event_id
    assert suppression(site.engine, "stays@example.com") is None

    # Providers retry when unsure the first delivery arrived: the same call again.
    again = site.post(driver.name, call)

    assert again.status_code == 200, again.text
    assert again.json() == {"events": 1, "recorded": 0, "suppressed": 0, "duplicates": 1}
    assert len(events_of(site.engine, "gone@example.com")) == 1


def test_a_complaint_suppresses_and_unsubscribes_from_every_list(site, driver):
    site.subscribe("annoyed@example.com")
    site.app.subscribers.create_list("evening", "Evening Edition")
    site.app.subscribers.add("annoyed@example.com", list_slug="evening")

    response = site.post(driver.name, driver.complaint("annoyed@example.com"))

    assert response.status_code == 200, response.text
    assert response.json()["suppressed"] == 1
    assert suppression(site.engine, "annoyed@example.com").reason == "complaint"
    with Session(site.engine) as session:
        statuses = session.scalars(select(Subscription.status)).all()
    assert statuses == ["unsubscribed", "unsubscribed"]


def test_calls_not_from_the_provider_are_refused_and_change_nothing(sqlite_site, driver):
    sqlite_site.subscribe("target@example.com")
    before = snapshot(sqlite_site.engine)

    outcomes = {what: sqlite_site.post(driver.name, call).status_code
                for what, call, _expected in driver.forgeries("target@example.com")}

    assert outcomes == {what: expected for what, _call, expected
                        in driver.forgeries("target@example.com")}
    assert snapshot(sqlite_site.engine) == before
    assert suppression(sqlite_site.engine, "target@example.com") is None


def test_soft_bounces_in_a_row_suppress_and_a_delivery_starts_the_count_again(site, driver):
    email = "full@example.com"
    site.subscribe(email)
    calls = [driver.soft_bounce(email, when=ago(days=6)),
             driver.soft_bounce(email, when=ago(days=5)),
             driver.delivered(email, when=ago(days=4)),
             driver.soft_bounce(email, when=ago(days=3)),
             driver.soft_bounce(email, when=ago(days=2))]
    for call in calls:
        assert site.post(driver.name, call).status_code == 200

    assert suppression(site.engine, email) is None
    assert [e.kind for e in events_of(site.engine, email)] == [
        "soft-bounce", "soft-bounce", "delivered", "soft-bounce", "soft-bounce"]

    response = site.post(driver.name, driver.soft_bounce(email, when=ago(days=1)))

    assert response.json()["suppressed"] == 1
    assert suppression(site.engine, email).reason == "soft-bounces"
    assert subscription_status(site.engine, email) == "active"   # suppressed, not unsubscribed


def test_a_verified_call_with_an_unreadable_body_is_400_and_changes_nothing(sqlite_site,
                                                                           driver):
    before = snapshot(sqlite_site.engine)
    for what, call in driver.malformed():
        response = sqlite_site.post(driver.name, call)
        assert response.status_code == 400, (what, response.text)
        assert "unreadable body" in response.json()["error"]
    assert snapshot(sqlite_site.engine) == before


def test_providers_without_a_configured_secret_answer_404(server, client, tmp_path, sqlite_url):
    app = App(make_config(tmp_path, sqlite_url))
    assert webhooks_from(app) == {}
    with server.serving(create_app(app)):
        for provider in PROVIDERS:
            call = DRIVERS[provider].hard_bounce("x@example.com")
            response = client.post(f"{server.url}/webhooks/{provider}", content=call.body,
                                   headers=call.headers)
            assert response.status_code == 404
            assert "no webhook" in response.json()["error"]
        assert client.post(f"{server.url}/webhooks/sparkpost", content=b"[]").status_code == 404
        assert client.get(f"{server.url}/healthz").text == "ok"


def webhook_request(call: Call, received_at: float | None = None) -> WebhookRequest:
    return WebhookRequest(headers={k.lower(): v for k, v in call.headers.items()},
                          body=call.body,
                          received_at=time.time() if received_at is None else received_at)


# -- Postmark ------------------------------------------------------------------------------

def test_postmark_asks_for_basic_credentials(sqlite_site):
    call = DRIVERS["postmark"].hard_bounce("x@example.com").with_headers(Authorization=None)
    response = sqlite_site.post("postmark", call)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_postmark_subscription_changes(sqlite_site):
    driver = DRIVERS["postmark"]
    sqlite_site.subscribe("left@example.com", "back@example.com", "hard@example.com")
    calls = [driver.call(driver.subscription_change("left@example.com", "ManualSuppression")),
             driver.call(driver.subscription_change("back@example.com", None, suppress=False)),
             driver.call(driver.subscription_change("hard@example.com", "HardBounce"))]
    assert [sqlite_site.post("postmark", call).json()["events"] for call in calls] == [1, 0, 1]

    assert subscription_status(sqlite_site.engine, "left@example.com") == "unsubscribed"
    assert suppression(sqlite_site.engine, "left@example.com") is None
    assert subscription_status(sqlite_site.engine, "back@example.com") == "active"
    assert suppression(sqlite_site.engine, "hard@example.com").reason == "hard-bounce"


@pytest.mark.parametrize("bounce_type, inactive, kind", [
    ("HardBounce", True, EventKind.HARD_BOUNCE),
    ("BadEmailAddress", False, EventKind.HARD_BOUNCE),
    ("ManuallyDeactivated", True, EventKind.HARD_BOUNCE),
    ("SoftBounce", True, EventKind.HARD_BOUNCE),     # Postmark deactivated the address
    ("SoftBounce", False, EventKind.SOFT_BOUNCE),
    ("Transient", False, EventKind.SOFT_BOUNCE),
    ("DnsError", False, EventKind.SOFT_BOUNCE),
    ("SpamComplaint", True, EventKind.COMPLAINT),
    ("Unsubscribe", False, EventKind.UNSUBSCRIBE),
    ("AutoResponder", False, None),
    ("AddressChange", False, None),
    ("DMARCPolicy", False, None),
])
def test_postmark_bounce_types(bounce_type, inactive, kind):
    hook = postmark.PostmarkWebhook(POSTMARK_USER, POSTMARK_PASSWORD)
    call = DRIVERS["postmark"].call(PostmarkDriver.bounce("x@example.com",
                                                          bounce_type=bounce_type,
                                                          inactive=inactive))
    events = hook.parse(webhook_request(call))
    assert [e.kind for e in events] == ([kind] if kind else [])


def test_postmark_event_ids_and_times():
    hook = postmark.PostmarkWebhook(POSTMARK_USER, POSTMARK_PASSWORD)
    bounce = PostmarkDriver.bounce("x@example.com", when=datetime(2026, 11, 24, 6, 30,
                                                                  tzinfo=UTC))
    [event] = hook.parse(webhook_request(DRIVERS["postmark"].call(bounce)))
    assert event.event_id == f"Bounce:{bounce['ID']}"
    assert event.occurred_at == datetime(2026, 11, 24, 6, 30, tzinfo=UTC)
    delivered = DRIVERS["postmark"].delivered("x@example.com", when=ago(hours=1))
    [event] = hook.parse(webhook_request(delivered))
    message_id = json.loads(delivered.body)["MessageID"]
    assert event.event_id.startswith(f"Delivery:{message_id}:x@example.com:")


# -- SendGrid ------------------------------------------------------------------------------

def test_sendgrid_verifies_sendgrids_published_test_vector():
    # The vector every SendGrid library tests its EventWebhook helper with.
    key = sendgrid.load_public_key(
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7"
        "yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==")
    hook = sendgrid.SendgridWebhook(key, max_age_seconds=600)
    call = Call(b'{"category":"example_payload","event":"test_event","message_id":"message_id"}',
                {"X-Twilio-Email-Event-Webhook-Signature":
                 "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQs"
                 "bVRamr2nlxFDWYNH2j/0=",
                 "X-Twilio-Email-Event-Webhook-Timestamp": "1588788367"})
    hook.verify(webhook_request(call, received_at=1588788367 + 5))
    with pytest.raises(WebhookRejected) as stale:
        hook.verify(webhook_request(call, received_at=1588788367 + 601))
    assert stale.value.status == 403
    with pytest.raises(WebhookRejected):
        hook.verify(webhook_request(Call(call.body.replace(b"test", b"best"), call.headers),
                                    received_at=1588788367))


def test_sendgrid_reads_every_event_of_a_batch(site):
    driver = SendgridDriver()
    event = SendgridDriver.event
    batch = [event("hard@example.com", "bounce", type="bounce", status="5.1.1",
                   reason="550 5.1.1 no such user"),
             event("blocked@example.com", "bounce", type="blocked", reason="421 try later"),
             event("deferred@example.com", "deferred", response="450 mailbox busy", attempt="1"),
             event("dropped@example.com", "dropped", reason="Bounced Address", status="5.0.0"),
             event("invalid@example.com", "dropped", reason="Invalid", status="5.0.0"),
             event("reported@example.com", "dropped", reason="Spam Reporting Address"),
             event("unsubscribed@example.com", "dropped", reason="Unsubscribed Address"),
             event("content@example.com", "dropped", reason="Spam Content (if spam checker app "
                                                            "enabled)"),
             event("spam@example.com", "spamreport"),
             event("leaver@example.com", "unsubscribe"),
             event("group@example.com", "group_unsubscribe", asm_group_id=10),
             event("reader@example.com", "open", useragent="Mozilla/5.0", ip="255.255.255.255"),
             event("reader@example.com", "processed"),
             event("reader@example.com", "delivered", response="250 OK")]

    response = site.post("sendgrid", driver.call(*batch))

    assert response.status_code == 200, response.text
    assert response.json()["events"] == 11
    with Session(site.engine) as session:
        kinds = dict(session.execute(select(BounceEvent.email_key, BounceEvent.kind)).all())
        reasons = dict(session.execute(select(Suppression.email_key, Suppression.reason)).all())
    assert kinds == {"hard@example.com": "hard-bounce", "blocked@example.com": "soft-bounce",
                     "deferred@example.com": "soft-bounce", "dropped@example.com": "hard-bounce",
                     "invalid@example.com": "hard-bounce",
                     "reported@example.com": "complaint",
                     "unsubscribed@example.com": "unsubscribe",
                     "spam@example.com": "complaint", "leaver@example.com": "unsubscribe",
                     "group@example.com": "unsubscribe"}   # no streak: the delivery is not kept
    assert reasons == {"hard@example.com": "hard-bounce", "dropped@example.com": "hard-bounce",
                       "invalid@example.com": "hard-bounce",
                       "reported@example.com": "complaint", "spam@example.com": "complaint"}


def test_sendgrid_refuses_a_key_that_is_not_p256():
    rsa_key = base64.b64encode(sns_key().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    for value in (rsa_key, "not a key"):
        with pytest.raises(ConfigError, match="webhook_public_key"):
            sendgrid.load_public_key(value)


# -- Mailgun -------------------------------------------------------------------------------

def test_mailgun_refuses_a_used_signature_under_other_event_data(sqlite_site):
    driver = MailgunDriver()
    sqlite_site.subscribe("victim@example.com", "real@example.com")
    genuine = driver.delivered("real@example.com", when=ago(minutes=2))
    assert sqlite_site.post("mailgun", genuine).status_code == 200
    before = snapshot(sqlite_site.engine)

    # Mailgun signs only timestamp + token: someone who saw that call could put a bounce for
    # another address under the same signature.
    payload = json.loads(genuine.body)
    payload["event-data"] = MailgunDriver.event("victim@example.com", "complained")
    replay = Call(json.dumps(payload).encode(), genuine.headers)
    response = sqlite_site.post("mailgun", replay)

    assert response.status_code == 403
    assert "replay" in response.json()["error"]
    assert snapshot(sqlite_site.engine) == before
    assert subscription_status(sqlite_site.engine, "victim@example.com") == "active"


def test_mailgun_remembers_a_bounded_number_of_tokens():
    hook = mailgun.MailgunWebhook(MAILGUN_KEY, max_age_seconds=600, max_tokens=3)
    driver = MailgunDriver()
    calls = [driver.delivered(f"r{n}@example.com", when=ago(minutes=1)) for n in range(4)]
    for call in calls:
        hook.verify(webhook_request(call))
    assert len(hook._tokens) == 3
    first = json.loads(calls[0].body)
    first["event-data"]["event"] = "complained"
    # The oldest token is forgotten (its call would be refused as stale soon anyway) …
    hook.verify(webhook_request(Call(json.dumps(first).encode(), calls[0].headers)))
    last = json.loads(calls[-1].body)
    last["event-data"]["event"] = "complained"
    # … a recent one is not.
    with pytest.raises(WebhookRejected):
        hook.verify(webhook_request(Call(json.dumps(last).encode(), calls[-1].headers)))


@pytest.mark.parametrize("event, severity, kind", [
    ("failed", "permanent", EventKind.HARD_BOUNCE),
    ("failed", "temporary", EventKind.SOFT_BOUNCE),
    ("complained", None, EventKind.COMPLAINT),
    ("unsubscribed", None, EventKind.UNSUBSCRIBE),
    ("delivered", None, EventKind.DELIVERED),
    ("accepted", None, None),
    ("opened", None, None),
    ("clicked", None, None),
])
def test_mailgun_event_kinds(event, severity, kind):
    hook = mailgun.MailgunWebhook(MAILGUN_KEY, max_age_seconds=600)
    data = MailgunDriver.event("x@example.com", event,
                               **({"severity": severity} if severity else {}))
    events = hook.parse(webhook_request(MailgunDriver().call(data)))
    assert [(e.kind, e.event_id) for e in events] == ([(kind, data["id"])] if kind else [])


# -- Resend --------------------------------------------------------------------------------

def test_resend_verifies_the_svix_reference_vector():
    # The test vector of Svix's libraries (and the Standard Webhooks specification).
    hook = resend.ResendWebhook(resend.decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                                max_age_seconds=300)
    call = Call(b'{"test": 2432232314}', {
        "svix-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "svix-timestamp": "1614265330",
        "svix-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="})
    hook.verify(webhook_request(call, received_at=1614265330 + 10))
    with pytest.raises(WebhookRejected) as stale:
        hook.verify(webhook_request(call, received_at=1614265330 + 301))
    assert stale.value.status == 403


def test_resend_accepts_any_matching_signature_while_a_secret_rotates(sqlite_site):
    driver = ResendDriver()
    sqlite_site.subscribe("rotated@example.com")
    call = driver.hard_bounce("rotated@example.com")
    old = "v1,bm90IHRoZSBzaWduYXR1cmUgb2YgdGhpcyBib2R5IGF0IGFsbA=="
    rotating = call.with_headers(svix_signature=f"{old} {call.headers['svix-signature']} v2,xyz")

    assert sqlite_site.post("resend", rotating).status_code == 200
    assert suppression(sqlite_site.engine, "rotated@example.com").reason == "hard-bounce"


@pytest.mark.parametrize("event_type, bounce_type, kind", [
    ("email.bounced", "Permanent", EventKind.HARD_BOUNCE),
    ("email.bounced", "Transient", EventKind.SOFT_BOUNCE),
    ("email.bounced", "Undetermined", EventKind.SOFT_BOUNCE),
    ("email.delivery_delayed", None, EventKind.SOFT_BOUNCE),
    ("email.complained", None, EventKind.COMPLAINT),
    ("email.delivered", None, EventKind.DELIVERED),
    ("email.sent", None, None),
    ("email.opened", None, None),
])
def test_resend_event_kinds(event_type, bounce_type, kind):
    hook = resend.ResendWebhook(resend.decode_secret(RESEND_SECRET), max_age_seconds=300)
    extra = {"bounce": {"type": bounce_type, "subType": "General", "message": "…"}} \
        if bounce_type else {}
    call = ResendDriver().call(ResendDriver.event(event_type, ["x@example.com"], **extra))
    events = hook.parse(webhook_request(call))
    assert [(e.kind, e.event_id) for e in events] == \
        ([(kind, call.headers["svix-id"])] if kind else [])


def test_resend_several_recipients_get_an_event_each():
    hook = resend.ResendWebhook(resend.decode_secret(RESEND_SECRET), max_age_seconds=300)
    call = ResendDriver().call(ResendDriver.event(
        "email.complained", ["a@example.com", "Bea <b@example.com>"]))
    events = hook.parse(webhook_request(call))
    assert [e.email for e in events] == ["a@example.com", "b@example.com"]
    assert len({e.event_id for e in events}) == 2


def test_resend_refuses_a_secret_that_is_not_base64():
    with pytest.raises(ConfigError, match="webhook_secret"):
        resend.decode_secret("whsec_not base64!")


# -- SES via SNS ---------------------------------------------------------------------------

# A notification really signed by SNS (SignatureVersion 1), with the certificate SNS signed it
# with (sns.amazonaws.com, issued by VeriSign; expired in 2015: this code does not check
# expiry, see the module). From the author tests of the Perl module AWS::SNS::Verify.
AWS_CERTIFICATE = b"""-----BEGIN CERTIFICATE-----
MIIFFzCCA/+gAwIBAgIQfXvtWTP5lfZLpmyNHLk1TDANBgkqhkiG9w0BAQUFADCB
tTELMAkGA1UEBhMCVVMxFzAVBgNVBAoTDlZlcmlTaWduLCBJbmMuMR8wHQYDVQQL
ExZWZXJpU2lnbiBUcnVzdCBOZXR3b3JrMTswOQYDVQQLEzJUZXJtcyBvZiB1c2Ug
YXQgaHR0cHM6Ly93d3cudmVyaXNpZ24uY29tL3JwYSAoYykxMDEvMC0GA1UEAxMm
VmVyaVNpZ24gQ2xhc3MgMyBTZWN1cmUgU2VydmVyIENBIC0gRzMwHhcNMTQwODIz
MDAwMDAwWhcNMTUwODIyMjM1OTU5WjBrMQswCQYDVQQGEwJVUzETMBEGA1UECBMK
V2FzaGluZ3RvbjEQMA4GA1UEBxQHU2VhdHRsZTEZMBcGA1UEChQQQW1hem9uLmNv
bSwgSW5jLjEaMBgGA1UEAxQRc25zLmFtYXpvbmF3cy5jb20wggEiMA0GCSqGSIb3
DQEBAQUAA4IBDwAwggEKAoIBAQDP/HD18qyBx4IgBvgVCkLTW18bULmoaaOQYtRY
yVpPxIFkNSHxT4uYH9knKUqddKQd1TEXHh0bF50lBiHZpuascNc3+FP2YKbF2t/z
a+zHfLipW01np85VDdIWedvB9TpnMdY9PQYTVx41+2fnei9WgjwXVM085WRSECh3
aRdkvOjwTN/Tlrgy3hoebVN3V5kB67b139m3xAlZjoB8MPdk/tlsk+wgVxuAY/gz
xGIZRJxlgEtsu2g8+rDkjS2tk3457Cz8aXRZSCGi+BB6yN2WhvWwPzSDJMDKxwXY
I8fGw0xutF4WHN414KBUp/s/+E6Ib7GxLUCwFon1swKRz9NxAgMBAAGjggFqMIIB
ZjAcBgNVHREEFTATghFzbnMuYW1hem9uYXdzLmNvbTAJBgNVHRMEAjAAMA4GA1Ud
DwEB/wQEAwIFoDAdBgNVHSUEFjAUBggrBgEFBQcDAQYIKwYBBQUHAwIwZQYDVR0g
BF4wXDBaBgpghkgBhvhFAQc2MEwwIwYIKwYBBQUHAgEWF2h0dHBzOi8vZC5zeW1j
Yi5jb20vY3BzMCUGCCsGAQUFBwICMBkaF2h0dHBzOi8vZC5zeW1jYi5jb20vcnBh
MB8GA1UdIwQYMBaAFA1EXBZTRMGCfh0gqyX0AWPYvnmlMCsGA1UdHwQkMCIwIKAe
oByGGmh0dHA6Ly9zZC5zeW1jYi5jb20vc2QuY3JsMFcGCCsGAQUFBwEBBEswSTAf
BggrBgEFBQcwAYYTaHR0cDovL3NkLnN5bWNkLmNvbTAmBggrBgEFBQcwAoYaaHR0
cDovL3NkLnN5bWNiLmNvbS9zZC5jcnQwDQYJKoZIhvcNAQEFBQADggEBABm5RaeH
sLtJftDeGghHAUkco8wkCshKQO1obhuMDJkJHAHbUrweP4Gw7WRhHNHo1jgA6Q61
NXik2w6H7SDVngCVIqOLFsr1DQ7fB5oSevMwjLvlaLxWBAvgKPSsjCt+QF1aNQiv
sfhOIgiJZTObBERsSs9FXWQ/vMkoisPKYJGn3KigzZj0GXSAB0do8Ejq8siBczgM
9o8NixqVvD7AOoE/QWXCtRDMRnQ5oIAc/Q9iUCJ8oAlbljDFkSqwgunpaG0iuHQZ
6Q4iHgmrgHM302H9fFxupyW46zwLH9gmbrUulmLRZT14bIzd0cZXqIl6nd8il4nq
kqQRCW8P2LDot4s=
-----END CERTIFICATE-----
"""
AWS_MESSAGE = {
    "Type": "Notification",
    "MessageId": "a890c547-5d98-55e2-971d-8826fff56413",
    "TopicArn": "arn:aws:sns:us-east-1:041977924901:foo",
    "Subject": "test subject",
    "Message": "test message",
    "Timestamp": "2015-02-20T20:59:25.401Z",
    "SignatureVersion": "1",
    "Signature": "kzi3JBQz64uFAXG9ZuAwPI2gYW5tT7OF83oeHb8v0/XRPsy0keq2NHTCpQVRxCgPOJ/QUB2Yl/L29/W4h"
                 "iHMo9+Ns0hrqyasgUfjq+XkVR1WDuYLtNaEA1vLnA0H9usSh3eVVlLhpYzoT4GUoGgstRVvFceW2QVF9E"
                 "YUQyromlcbOVtVpKCEINAvGEEKJNGTXQQUkPUka3YMhHitgQg1WlFBmf+oweSYUEj8+RoguWsn6vluxD0"
                 "VtIOGOml5jlUecfhDqnetF5pUVYMqCHPfHn6RBguiW+XD6XWsdKKxkjqo90a65Nlb72gPSRw6+sIEIgf4"
                 "J39WFZK+FCpeSm0qAg==",
    "SigningCertURL": "https://sns.us-east-1.amazonaws.com/"
                      "SimpleNotificationService-d6d679a1d18e95c2f9ffcf11f4f9e198.pem",
    "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn="
                      "arn:aws:sns:us-east-1:041977924901:foo:20b2d060-2a32-4506-9cb0-24b8b9e605e1",
}


def test_ses_verifies_a_message_really_signed_by_sns():
    sns = FakeSns(AWS_CERTIFICATE)
    hook = ses.SesWebhook(AWS_MESSAGE["TopicArn"], fetch_certificate=sns.fetch_certificate)
    hook.verify(webhook_request(Call(json.dumps(AWS_MESSAGE).encode(), {})))
    assert sns.fetched == [AWS_MESSAGE["SigningCertURL"]]
    assert hook.parse(webhook_request(Call(json.dumps(AWS_MESSAGE).encode(), {}))) == []
    tampered = {**AWS_MESSAGE, "Message": "TAMPERED MESSAGE"}
    with pytest.raises(WebhookRejected) as refused:
        hook.verify(webhook_request(Call(json.dumps(tampered).encode(), {})))
    assert refused.value.status == 403


def test_ses_accepts_signature_version_2_and_fetches_a_certificate_once(sqlite_site):
    driver = SesDriver()
    sqlite_site.subscribe("v2@example.com", "v1@example.com")
    v2 = driver.signed(driver.bounce_message("v2@example.com"), version="2",
                       subject="Amazon SES Email Event Notification")
    v1 = driver.hard_bounce("v1@example.com")

    assert sqlite_site.post("ses", v2).status_code == 200
    assert sqlite_site.post("ses", v1).status_code == 200

    assert suppression(sqlite_site.engine, "v2@example.com").reason == "hard-bounce"
    assert suppression(sqlite_site.engine, "v1@example.com").reason == "hard-bounce"
    assert sqlite_site.sns.fetched == [CERT_URL]


def test_ses_confirms_a_subscription_after_verifying_it(sqlite_site):
    driver = SesDriver()
    token = secrets.token_hex(64)
    subscribe_url = ("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
                     f"&TopicArn={TOPIC_ARN}&Token={token}")
    confirmation = driver.sign({
        "Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": token,
        "TopicArn": TOPIC_ARN,
        "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.\n"
                   "To confirm the subscription, visit the SubscribeURL included in this message.",
        "SubscribeURL": subscribe_url, "Timestamp": iso(ago(seconds=3)),
        "SigningCertURL": CERT_URL})
    forged = {**confirmation, "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?evil"}

    assert sqlite_site.post("ses", driver.call(forged)).status_code == 403
    assert sqlite_site.sns.confirmed == []
    response = sqlite_site.post("ses", driver.call(confirmation))

    assert response.status_code == 200, response.text
    assert response.json()["events"] == 0
    assert sqlite_site.sns.confirmed == [subscribe_url]


def test_ses_reads_bounces_for_several_recipients_and_event_publishing(site):
    driver = SesDriver()
    site.subscribe("one@example.com", "two@example.com", "three@example.com")
    both = driver.signed(driver.bounce_message("one@example.com", "two@example.com"))
    published = driver.signed(driver.bounce_message("three@example.com", key="eventType"))

    assert site.post("ses", both).json()["suppressed"] == 2
    assert site.post("ses", published).json()["suppressed"] == 1
    for email in ("one@example.com", "two@example.com", "three@example.com"):
        assert suppression(site.engine, email).reason == "hard-bounce"


def test_ses_ignores_what_says_nothing_about_an_address(sqlite_site):
    driver = SesDriver()
    sqlite_site.subscribe("fine@example.com")
    before = snapshot(sqlite_site.engine)
    calls = [driver.signed(driver.complaint_message("fine@example.com", feedback="not-spam")),
             driver.signed("Successfully validated SNS topic for Amazon SES event publishing."),
             driver.signed({"eventType": "Open", "mail": driver.mail("fine@example.com"),
                            "open": {"ipAddress": "192.0.2.1", "timestamp": iso(ago())}}),
             driver.signed({"notificationType": "AmazonSnsSubscriptionSucceeded",
                            "message": "You have successfully subscribed your Amazon SNS topic "
                                       f"'{TOPIC_ARN}' to receive 'Bounce' notifications from "
                                       "Amazon SES for identity 'news.example.com'."})]
    for call in calls:
        response = sqlite_site.post("ses", call)
        assert (response.status_code, response.json()["events"]) == (200, 0)
    assert snapshot(sqlite_site.engine) == before


def test_ses_logs_the_subscribe_url_when_confirming_fails(caplog):
    def refuse(url: str) -> bytes:
        raise httpx.ConnectError("connection refused")

    sns = FakeSns(sns_certificate_pem())
    hook = ses.SesWebhook(TOPIC_ARN, fetch_certificate=sns.fetch_certificate,
                          confirm_subscription=refuse)
    url = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc"
    call = SesDriver().call(SesDriver().sign({
        "Type": "SubscriptionConfirmation", "MessageId": "m", "Token": "abc",
        "TopicArn": TOPIC_ARN, "Message": "confirm", "SubscribeURL": url,
        "Timestamp": iso(ago()), "SigningCertURL": CERT_URL}))
    hook.verify(webhook_request(call))
    with pytest.raises(httpx.ConnectError):
        hook.parse(webhook_request(call))
    assert url in caplog.text


def test_ses_answers_503_when_the_certificate_cannot_be_fetched(sqlite_site):
    sqlite_site.sns.fail = True
    response = sqlite_site.post("ses", SesDriver().hard_bounce("x@example.com"))
    assert response.status_code == 503
    sqlite_site.sns.fail = False
    assert sqlite_site.post("ses", SesDriver().hard_bounce("x@example.com")).status_code == 200


@pytest.mark.parametrize("url, accepted", [
    ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
    ("https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem", True),
    ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-abc.pem", False),
    ("https://evil.example/sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
    ("https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem", False),
    ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.txt", False),
    ("https://s3.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", False),
])
def test_ses_fetches_certificates_only_from_sns_in_the_topics_region(url, accepted):
    hook = ses.SesWebhook(TOPIC_ARN)
    assert hook.is_sns_url(url, path_suffix=".pem") is accepted


def test_ses_refuses_a_topic_arn_that_is_not_one():
    with pytest.raises(ConfigError, match="sns_topic_arn"):
        ses.SesWebhook("digest-ses-notifications")


def test_ses_fetches_over_http_with_a_size_limit(http_server: HttpServer):
    http_server.route("GET", "/cert.pem", lambda _r: Response(200, sns_certificate_pem()))
    http_server.route("GET", "/huge.pem", lambda _r: Response(200, b"x" * 70_000))
    assert ses.http_get(f"{http_server.url}/cert.pem") == sns_certificate_pem()
    for path in ("/huge.pem", "/missing.pem"):
        with pytest.raises(httpx.HTTPError):
            ses.http_get(f"{http_server.url}{path}")


# -- shared parts --------------------------------------------------------------------------

@pytest.mark.parametrize("provider, make", [
    ("postmark", lambda: postmark.PostmarkWebhook("u", "p")),
    ("sendgrid", lambda: sendgrid.SendgridWebhook(sendgrid_key().public_key(),
                                                  max_age_seconds=600)),
    ("mailgun", lambda: mailgun.MailgunWebhook("k", max_age_seconds=600)),
    ("resend", lambda: resend.ResendWebhook(b"k", max_age_seconds=300)),
    ("ses", lambda: ses.SesWebhook(TOPIC_ARN)),
])
def test_each_webhook_names_its_provider_and_meets_the_interface(provider, make):
    hook = make()
    assert hook.provider == provider
    assert callable(hook.verify) and callable(hook.parse)


def test_event_ids_stay_within_the_column():
    from digest.web.webhooks.common import event_id

    long_address = "a" * 64 + "@" + "b" * 180 + ".example"
    value = event_id("msg_2abcDEF", long_address)
    assert value is not None and len(value) <= 200
    assert value == event_id("msg_2abcDEF", long_address.upper())
    assert event_id("") is None and event_id(None) is None


def test_event_times_in_the_future_count_as_arrival():
    from digest.web.webhooks.common import parse_time

    arrival = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    assert parse_time("2026-11-26T00:00:00Z", arrival.timestamp()) == arrival
    assert parse_time("2026-11-24T23:41:11.894719+00:00", arrival.timestamp()) == \
        datetime(2026, 11, 24, 23, 41, 11, 894719, tzinfo=UTC)
    assert parse_time("2019-11-05T16:33:54.9070259Z", arrival.timestamp()) == \
        datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert parse_time(1534110422.389832, arrival.timestamp()).year == 2018
    assert parse_time("yesterday", arrival.timestamp()) is None
    assert parse_time(True, arrival.timestamp()) is None


def test_an_oversized_webhook_body_is_refused_unread(tmp_path, sqlite_url):
    import httpx

    from digest.app import App
    from digest.web.app import create_app
    from digest.web.webhooks.routes import MAX_WEBHOOK_BYTES
    from conftest import make_config
    from support.asgi_server import AsgiServer

    app = App(make_config(tmp_path, sqlite_url,
                          postmark={"webhook_username": "u", "webhook_password": "p"}))
    with AsgiServer(create_app(app)) as server:
        response = httpx.post(f"{server.url}/webhooks/postmark", auth=("u", "p"),
                              content=b"x" * (MAX_WEBHOOK_BYTES + 1))
    assert response.status_code == 413
