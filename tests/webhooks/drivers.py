"""One driver per provider: each builds the calls that provider documents (payload shapes from
its examples, signatures by its scheme) and forgeries of them, signed with the test keys.
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
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from webhooks.calls import (CERT_URL, MAILGUN_KEY, POSTMARK_PASSWORD, POSTMARK_USER,
                            RESEND_SECRET, TOPIC_ARN, Call, Driver, ago, iso, now_ts,
                            other_ec_key, other_rsa_key, sendgrid_key, sns_key)


_numbers = itertools.count(1)


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
