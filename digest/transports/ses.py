"""Amazon SES (API v2): one SendEmail call per message, the MIME message sent as it is.

SES has no batch call for messages of our own making (SendBulkEmail takes SES templates only),
so each message is one ``POST /v2/email/outbound-emails`` with ``Content.Raw`` = the message's
MIME bytes, base64 in JSON, and our delivery id as an email tag. The calls of a batch go one
after the other: the Deliverer already runs several sending threads.

Requests are signed with AWS Signature Version 4 (service ``ses``) by botocore's ``SigV4Auth``,
an optional dependency: ``pip install "newsroom-digest[ses]"``. The signature covers the exact
body bytes, so signing happens in an httpx auth hook, after httpx has serialised the JSON.

Answers: 200 ``{"MessageId"}`` is sent. Errors name their type in the ``X-Amzn-ErrorType``
header (or the body's ``__type``/``code``):

* ``MessageRejected``, ``BadRequestException``: this message fails (content, or an address SES
  will not take); the others go on.
* ``TooManyRequestsException`` (429), ``LimitExceededException``: retry later.
* ``AccountSuspendedException``, ``SendingPausedException``,
  ``MailFromDomainNotVerifiedException``, ``NotFoundException`` (configuration set), refused
  credentials: nothing can be sent; a :class:`TransportError` that says what to fix.

Sources: botocore data/sesv2/2019-09-27/service-2.json; docs.aws.amazon.com/ses/latest/
APIReference-V2/API_SendEmail; research/providers.md §5.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from digest.errors import ConfigError, TransportError
from digest.outbound import OutgoingMessage, SendResult
from digest.scrub import Scrubber
from digest.transports.apis import json_object, send_requests
from digest.transports.http import ApiClient, retry_after

if TYPE_CHECKING:
    from digest.transports.registry import TransportNeeds
    from digest.transports.settings import SesConfig

log = logging.getLogger(__name__)

SEND_PATH = "/v2/email/outbound-emails"
SIGNING_NAME = "ses"
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_TAG_LENGTH = 256
INSTALL_HINT = ('install the SES extra: pip install "newsroom-digest[ses]" '
                '(or: pip install botocore)')

# Error types (without their namespace) and what they mean for us.
_FAILS_MESSAGE = frozenset({"MessageRejected", "BadRequestException"})
_RETRY_LATER = frozenset({"TooManyRequestsException", "LimitExceededException",
                          "ThrottlingException", "Throttling", "ServiceUnavailable",
                          "InternalFailure"})
_ACCOUNT = {
    "AccountSuspendedException": "the SES account is suspended from sending; see the SES "
                                 "console (account dashboard) and AWS support",
    "SendingPausedException": "sending is paused for the account or the configuration set; "
                              "resume it in the SES console",
    "MailFromDomainNotVerifiedException": "the MAIL FROM domain of the sender is not verified "
                                          "in SES; verify it (or use the default MAIL FROM)",
    "NotFoundException": "SES did not find a resource the request names; check [ses] "
                         "configuration_set and region",
}
_CREDENTIALS = frozenset({"UnrecognizedClientException", "InvalidSignatureException",
                          "SignatureDoesNotMatch", "IncompleteSignature",
                          "IncompleteSignatureException", "InvalidClientTokenId",
                          "ExpiredToken", "ExpiredTokenException", "AccessDeniedException",
                          "MissingAuthenticationToken"})


class SigV4(httpx.Auth):
    """Signs each request with botocore's SigV4Auth over the exact bytes httpx sends."""

    requires_request_body = True

    def __init__(self, *, access_key_id: str, secret_access_key: str, session_token: str,
                 region: str) -> None:
        try:
            from botocore.auth import SigV4Auth
            from botocore.credentials import Credentials
        except ImportError:
            raise ConfigError("[delivery] transport = \"ses\" needs the botocore package, "
                              "which is not installed", hint=INSTALL_HINT) from None
        credentials = Credentials(access_key_id, secret_access_key, session_token or None)
        self._signer = SigV4Auth(credentials, SIGNING_NAME, region)

    def __repr__(self) -> str:  # never show the keys
        return "SigV4()"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.awsrequest import AWSRequest

        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content,
                            headers={"Content-Type": request.headers.get("content-type", "")})
        self._signer.add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request


class SesTransport:
    """Meets :class:`digest.deliver.Transport` for the SES v2 SendEmail call."""

    name = "ses"
    max_batch = 50

    def __init__(self, *, access_key_id: str, secret_access_key: str, client: httpx.Client,
                 region: str = "us-east-1", session_token: str = "", base_url: str = "",
                 configuration_set: str = "", scrubber: Scrubber | None = None) -> None:
        self.region = region
        self._scrubber = scrubber or Scrubber([("secret access key", secret_access_key),
                                               ("session token", session_token)])
        self.configuration_set = configuration_set
        auth = SigV4(access_key_id=access_key_id, secret_access_key=secret_access_key,
                     session_token=session_token, region=region)
        self._api = ApiClient("ses", base_url or f"https://email.{region}.amazonaws.com",
                              client, auth=auth)

    def __repr__(self) -> str:  # never show the keys
        return f"SesTransport(region={self.region!r}, base_url={self._api.base_url!r})"

    def close(self) -> None:
        """Nothing to release: the httpx client is shared and owned by the App."""

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        # One call per message: each request is a message alone.
        return send_requests([[message] for message in messages],
                             lambda request: [self._send_one(request[0])],
                             scrubber=self._scrubber)

    def _send_one(self, message: OutgoingMessage) -> SendResult:
        response = self._api.post(SEND_PATH, json=self.payload(message))
        status = response.status_code
        log.debug("ses request delivery=%d status=%d", message.delivery_id, status)
        if status == 200:
            return SendResult.sent(message, str(json_object(response).get("MessageId", "")))
        kind, text = error_of(response)
        if kind in _FAILS_MESSAGE:
            return SendResult.failed(message, f"ses refused the message: {kind}: {text}")
        if kind in _RETRY_LATER:
            raise TransportError(f"ses: {kind} ({status}): {text}", retry=True,
                                 retry_after=retry_after(response))
        if kind in _CREDENTIALS:
            raise TransportError(f"ses: the API refused our credentials ({status} {kind}): "
                                 f"{text}", retry=False,
                                 hint="check [ses] access_key_id, secret_access_key, "
                                      "session_token and region (the secrets are never "
                                      "printed)")
        if kind in _ACCOUNT:
            raise TransportError(f"ses: {kind} ({status}): {text}", retry=False,
                                 hint=_ACCOUNT[kind])
        self._api.raise_for_batch_failure(response)        # 401, 403, 429, 5xx
        raise TransportError(f"ses: unexpected answer {status} {kind or '(no error type)'}: "
                             f"{text}", retry=False,
                             hint="check [ses] region and base_url (empty: the public API)")

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        tags = [{"Name": "delivery_id", "Value": str(message.delivery_id)}]
        edition = _TAG_UNSAFE.sub("-", message.tag).strip("-")[:MAX_TAG_LENGTH]
        if edition:
            tags.append({"Name": "edition", "Value": edition})
        payload: dict[str, Any] = {
            "FromEmailAddress": message.envelope_from,
            "Destination": {"ToAddresses": [message.to_address]},
            "Content": {"Raw": {"Data": base64.b64encode(message.raw).decode("ascii")}},
            "EmailTags": tags,
        }
        if self.configuration_set:
            payload["ConfigurationSetName"] = self.configuration_set
        return payload


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The error type (namespace and suffixes removed) and message of a rest-json error."""
    body = json_object(response)
    kind = response.headers.get("x-amzn-errortype", "") or str(body.get("__type")
                                                              or body.get("code") or "")
    kind = kind.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    text = str(body.get("message") or body.get("Message") or "").strip()
    if not text:
        raw = response.text.strip().replace("\n", " ")
        text = raw[:300] + ("…" if len(raw) > 300 else "")
    return kind, text[:500]


def from_settings(settings: SesConfig, needs: TransportNeeds) -> SesTransport:
    return SesTransport(access_key_id=settings.access_key_id,
                        secret_access_key=settings.secret_access_key.get_secret_value(),
                        session_token=settings.session_token.get_secret_value(),
                        region=settings.region, configuration_set=settings.configuration_set,
                        base_url=settings.base_url, client=needs.http_client(),
                        scrubber=needs.scrubber)
