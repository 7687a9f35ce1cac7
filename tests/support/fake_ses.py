"""A fake Amazon SES v2 SendEmail endpoint on the loopback HTTP server.

It checks a request as AWS documents it: ``POST /v2/email/outbound-emails``; an
``Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/ses/aws4_request,
SignedHeaders=…, Signature=…`` header whose signature it computes again, independently of
botocore, from the secret key (Signature Version 4: canonical request, string to sign, derived
key); ``X-Amz-Date`` of the same day; ``X-Amz-Security-Token`` when the credentials are
temporary; a JSON body with ``Destination`` (≤ 50 recipients), exactly one of
``Content.Simple/Raw/Template``, ``Raw.Data`` base64, ``EmailTags`` of ``[A-Za-z0-9_-]``.
It answers like SES (200 ``{"MessageId"}``; errors with ``X-Amzn-ErrorType`` and
``{"message"}``) and records each accepted message's MIME bytes. Tests script trouble with the
vocabulary of :mod:`support.fake_api` and SES's own answer:
``fake.script(passes(), refusal(400, "LimitExceededException", "Daily message quota…"))``.

Sources: botocore data/sesv2/2019-09-27/service-2.json; docs.aws.amazon.com/IAM/latest/
UserGuide/create-signed-request.html (SigV4 steps); research/providers.md §5.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hashlib
import hmac
import itertools
import json
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import quote

from support.fake_api import FakeApi, Step, answer
from support.http_server import Request, Response

PATH = "/v2/email/outbound-emails"
AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$")
AMZ_DATE = re.compile(r"^\d{8}T\d{6}Z$")
TAG = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
BODY_KEYS = {"FromEmailAddress", "FromEmailAddressIdentityArn", "Destination",
             "ReplyToAddresses", "FeedbackForwardingEmailAddress",
             "FeedbackForwardingEmailAddressIdentityArn", "Content", "EmailTags",
             "ConfigurationSetName", "ListManagementOptions", "EndpointId",
             "TenantName"}


@dataclass
class Accepted:
    body: dict
    raw: bytes
    message_id: str
    authorization: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def to(self) -> list[str]:
        return self.body["Destination"]["ToAddresses"]

    @property
    def tags(self) -> dict[str, str]:
        return {t["Name"]: t["Value"] for t in self.body.get("EmailTags", [])}

    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore


class FakeSes(FakeApi):
    def __init__(self, *, access_key_id: str = "AKIDFAKESES0000000001",
                 secret_access_key: str = "fake/secret+key-that-must-not-leak",
                 session_token: str = "", region: str = "eu-west-1",
                 configuration_set: str = "") -> None:
        super().__init__(PATH)
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.region = region
        self.configuration_set = configuration_set
        self.accepted: list[Accepted] = []
        self.reject: dict[str, tuple[int, str, str]] = {}   # address -> (status, type, message)
        self._ids = itertools.count(1)

    # -- the API -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        problem = self.check_signature(request)
        if problem:
            return problem
        try:
            body = json.loads(request.body)
        except ValueError:
            return error(400, "SerializationException", "body is not JSON")
        problem_text = validate(body, self.configuration_set)
        if problem_text:
            return error(400, "BadRequestException", problem_text)
        raw = base64.b64decode(body["Content"]["Raw"]["Data"], validate=True)
        for address in body["Destination"]["ToAddresses"]:
            if address in self.reject:
                status, kind, message = self.reject[address]
                return error(status, kind, message)
        message_id = f"0102018c{next(self._ids):08x}-fake-000000"
        self.accepted.append(Accepted(body, raw, message_id, request.header("authorization"),
                                      dict(request.headers)))
        return Response(200, json.dumps({"MessageId": message_id}).encode(),
                        {"Content-Type": "application/json",
                         "x-amzn-RequestId": f"req-{message_id}"})

    def check_signature(self, request: Request) -> Response | None:
        """None if the request is signed by our key as SigV4 says; else SES's answer."""
        authorization = request.header("authorization")
        match = AUTHORIZATION.match(authorization)
        if not match:
            return error(403, "IncompleteSignatureException",
                         "Authorization header requires 'Credential', 'SignedHeaders' and "
                         "'Signature' parameters")
        if match["key"] != self.access_key_id:
            return error(403, "UnrecognizedClientException",
                         "The security token included in the request is invalid.")
        amz_date = request.header("x-amz-date")
        if not AMZ_DATE.match(amz_date) or amz_date[:8] != match["date"]:
            return error(403, "IncompleteSignatureException", "X-Amz-Date is missing or is "
                                                              "not the credential's date")
        if match["region"] != self.region or match["service"] != "ses":
            return error(403, "InvalidSignatureException",
                         f"Credential should be scoped to a valid region ({self.region}) and "
                         "service (ses)")
        signed = match["signed"].split(";")
        if not {"host", "x-amz-date"} <= set(signed) or signed != sorted(signed):
            return error(403, "InvalidSignatureException",
                         "SignedHeaders must include host and x-amz-date, sorted")
        if self.session_token:
            if request.header("x-amz-security-token") != self.session_token \
                    or "x-amz-security-token" not in signed:
                return error(403, "UnrecognizedClientException",
                             "The security token included in the request is invalid.")
        expected = signature(request, signed_headers=signed, secret=self.secret_access_key,
                             date=match["date"], region=match["region"], amz_date=amz_date)
        if not hmac.compare_digest(expected, match["signature"]):
            return error(403, "InvalidSignatureException",
                         "The request signature we calculated does not match the signature "
                         "you provided.")
        return None


def signature(request: Request, *, signed_headers: list[str], secret: str, date: str,
              region: str, amz_date: str, service: str = "ses") -> str:
    """The SigV4 signature of a received request, computed from scratch."""
    path, _, query = request.path.partition("?")
    canonical_query = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                      for k, _, v in (p.partition("=") for p in query.split("&")
                                                      if p)))
    canonical_headers = "".join(
        f"{name}:{' '.join(request.header(name).split())}\n" for name in signed_headers)
    canonical = "\n".join([request.method, quote(path, safe="/-_.~"), canonical_query,
                           canonical_headers, ";".join(signed_headers),
                           hashlib.sha256(request.body).hexdigest()])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def validate(body: object, configuration_set: str = "") -> str:
    if not isinstance(body, dict):
        return "body must be an object"
    unknown = set(body) - BODY_KEYS
    if unknown:
        return f"fake: unknown members {sorted(unknown)}"
    destination = body.get("Destination")
    if not isinstance(destination, dict):
        return "Destination is required"
    addresses = [a for key in ("ToAddresses", "CcAddresses", "BccAddresses")
                 for a in destination.get(key, [])]
    if not addresses or not all(isinstance(a, str) and "@" in a for a in addresses):
        return "Missing final '@domain'"
    if len(addresses) > 50:
        return "Recipient count exceeds 50."
    content = body.get("Content")
    if not isinstance(content, dict) or len(set(content) & {"Simple", "Raw", "Template"}) != 1:
        return "Content must have exactly one of Simple, Raw or Template"
    if "Raw" in content:
        try:
            raw = base64.b64decode(content["Raw"]["Data"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            return "Raw.Data must be base64"
        if len(content["Raw"]["Data"]) > 40 * 1024 * 1024:
            return "Message length is more than 40 MB"
        if b"\r\n\r\n" not in raw:
            return "Raw message has no header/body separator"
    for tag in body.get("EmailTags", []):
        if not (isinstance(tag, dict) and TAG.match(str(tag.get("Name", "")))
                and TAG.match(str(tag.get("Value", "")))):
            return f"Invalid tag: {tag!r}"
    if configuration_set and body.get("ConfigurationSetName") != configuration_set:
        return f"fake: expected ConfigurationSetName {configuration_set!r}"
    return ""


def refusal(status: int, kind: str, message: str = "", *,
            headers: dict[str, str] | None = None) -> Step:
    """SES's error answer: the error type in ``X-Amzn-ErrorType``, ``{"message"}`` as body."""
    return answer(status, {"message": message or kind},
                  {"X-Amzn-ErrorType": kind, **(headers or {})})


def error(status: int, kind: str, message: str) -> Response:
    return refusal(status, kind, message).response
