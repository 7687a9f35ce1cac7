"""The Amazon SES transport against a fake SES v2 endpoint on loopback that checks the
documented request and recomputes the Signature Version 4 signature on its own.

What a user relies on: each message goes out as its own signed SendEmail call carrying our MIME
message byte for byte; a message SES refuses fails alone; throttling, server errors and timeouts
become the right retry; account-level trouble stops with a hint; a missing botocore says what to
install; and the secret key never appears in an error, a log or a repr.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from digest.app import App
from digest.errors import ConfigError, TransportError
from digest.outbound import Outcome
from digest.transports.ses import SesTransport
from conftest import make_config
from support.fake_api import hang, passes
from support.fake_ses import FakeSes, refusal, signature
from support.http_server import Request
from support.outgoing import (TRICKY_NAMES, a_message, an_edition_for_both_tiers,
                              assert_each_reader_got_their_variant, sent_deliveries,
                              some_messages)

pytestmark = pytest.mark.timeout(25)

KEY_ID = "AKIDFAKESES0000000001"
SECRET = "fake/secret+key-that-must-not-leak"
REGION = "eu-west-1"


@pytest.fixture
def fake() -> Iterator[FakeSes]:
    with FakeSes(access_key_id=KEY_ID, secret_access_key=SECRET, region=REGION) as fake:
        yield fake


def a_transport(fake: FakeSes, client: httpx.Client, **options: str) -> SesTransport:
    settings = {"access_key_id": KEY_ID, "secret_access_key": SECRET, "region": REGION,
                **options}
    return SesTransport(client=client, base_url=fake.url, **settings)


def parts(accepted) -> tuple[str, str]:  # noqa: ANN001
    """The HTML and text parts as a mail client decodes them (line ends as in Python)."""
    text, html = accepted.parsed().iter_parts()
    return (html.get_content().replace("\r\n", "\n"),
            text.get_content().replace("\r\n", "\n"))


# -- the request ---------------------------------------------------------------------------


def test_each_message_is_one_signed_send_email_carrying_our_mime_message(fake, client,
                                                                         factory):
    messages = [a_message(factory, n, name=name, tier=("free", "client")[n % 2])
                for n, name in enumerate(TRICKY_NAMES, start=1)]
    results = a_transport(fake, client, configuration_set="digest-events").send(messages)

    assert [r.outcome for r in results] == [Outcome.SENT] * len(messages)
    assert [r.provider_id for r in results] == [a.message_id for a in fake.accepted]
    assert len(fake.requests) == len(messages)
    for message, accepted in zip(messages, fake.accepted, strict=True):
        assert accepted.to == [message.to_address]
        assert accepted.raw == message.raw
        html, text = parts(accepted)
        assert (html, text) == (message.html, message.text)
        assert accepted.body["FromEmailAddress"] == "digest@news.example.com"
        assert accepted.body["ConfigurationSetName"] == "digest-events"
        assert accepted.tags == {"delivery_id": str(message.delivery_id),
                                 "edition": message.tag}
        assert set(accepted.body["Content"]) == {"Raw"}


def test_the_signature_is_aws_sigv4_for_ses_in_the_region(fake, client, factory):
    a_transport(fake, client).send(some_messages(factory, 1))
    request = fake.requests[0]
    assert request.method == "POST" and request.path == "/v2/email/outbound-emails"
    today = datetime.now(UTC).strftime("%Y%m%d")
    amz_date = request.header("x-amz-date")
    assert re.fullmatch(r"\d{8}T\d{6}Z", amz_date) and amz_date[:8] in {today, _yesterday()}
    assert request.header("authorization").startswith(
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{amz_date[:8]}/{REGION}/ses/aws4_request, "
        "SignedHeaders=")
    assert fake.accepted                                   # the fake verified the signature


def test_temporary_credentials_send_and_sign_the_session_token(fake, client, factory):
    fake.session_token = "session-token-xyz"
    a_transport(fake, client, session_token="session-token-xyz").send(
        some_messages(factory, 1))
    assert len(fake.accepted) == 1
    assert "x-amz-security-token" in fake.accepted[0].authorization


def test_the_fake_checks_signatures_like_aws():
    # The example of AWS's Signature Version 4 documentation (IAM ListUsers).
    request = Request("GET", "/?Action=ListUsers&Version=2010-05-08", {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "host": "iam.amazonaws.com", "x-amz-date": "20150830T123600Z"}, b"")
    assert signature(request, signed_headers=["content-type", "host", "x-amz-date"],
                     secret="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", date="20150830",
                     region="us-east-1", amz_date="20150830T123600Z", service="iam") == \
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"


def test_a_request_changed_after_signing_is_refused(fake, factory):
    def tamper(request: httpx.Request) -> None:      # runs after the auth hook signed it
        request.headers["Content-Type"] = "application/json; charset=utf-8"

    with httpx.Client(timeout=5, event_hooks={"request": [tamper]}) as client:
        transport = a_transport(fake, client)
        with pytest.raises(TransportError) as caught:
            transport.send(some_messages(factory, 1))
    assert not caught.value.retry and "InvalidSignatureException" in str(caught.value)
    assert fake.accepted == []


# -- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["MessageRejected", "BadRequestException"])
def test_a_message_ses_refuses_fails_alone(fake, client, factory, kind):
    fake.reject["reader2@example.org"] = (400, kind, "Email address is not verified.")
    results = {r.delivery_id: r for r in a_transport(fake, client).send(
        some_messages(factory, 3))}
    assert results[2].outcome is Outcome.FAILED and kind in results[2].error
    assert "not verified" in results[2].error and not results[2].hard_bounce
    assert (results[1].outcome, results[3].outcome) == (Outcome.SENT, Outcome.SENT)


def test_throttling_raises_a_retry_with_retry_after(fake, client, factory):
    fake.script(refusal(429, "TooManyRequestsException", "Too many requests.",
                        headers={"Retry-After": "4"}))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send(some_messages(factory, 3))
    assert caught.value.retry and caught.value.retry_after == 4
    assert len(fake.requests) == 1                          # the others were not tried


def test_a_quota_reached_mid_batch_keeps_what_was_sent_and_retries_the_rest(fake, client,
                                                                            factory):
    fake.script(passes(),
                refusal(400, "LimitExceededException", "Daily message quota exceeded."))
    results = [(r.delivery_id, r.outcome) for r in a_transport(fake, client).send(
        some_messages(factory, 4))]
    assert results == [(1, Outcome.SENT), (2, Outcome.RETRY), (3, Outcome.RETRY),
                       (4, Outcome.RETRY)]


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_raises_a_retry(fake, client, factory, status):
    fake.script(refusal(status, "InternalFailure" if status == 500 else "ServiceUnavailable"))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send(some_messages(factory, 2))
    assert caught.value.retry


@pytest.mark.parametrize("kind, hint", [
    ("AccountSuspendedException", "suspended"),
    ("SendingPausedException", "paused"),
    ("MailFromDomainNotVerifiedException", "MAIL FROM"),
    ("NotFoundException", "configuration_set"),
])
def test_account_trouble_stops_with_a_hint(fake, client, factory, kind, hint):
    fake.script(refusal(404 if kind == "NotFoundException" else 400, kind))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send(some_messages(factory, 2))
    assert not caught.value.retry and kind in str(caught.value) and hint in caught.value.hint


def test_no_answer_in_time_may_have_been_sent(fake, factory):
    fake.script(hang(3))
    with httpx.Client(timeout=0.3) as slow, pytest.raises(TransportError) as caught:
        a_transport(fake, slow).send(some_messages(factory, 1))
    assert caught.value.retry and caught.value.maybe_sent


def test_a_timeout_mid_batch_makes_that_message_uncertain_and_the_rest_wait(fake, factory):
    fake.script(passes(), hang(3))
    with httpx.Client(timeout=1) as slow:
        results = [(r.delivery_id, r.outcome) for r in a_transport(fake, slow).send(
            some_messages(factory, 3))]
    assert results == [(1, Outcome.SENT), (2, Outcome.UNCERTAIN), (3, Outcome.RETRY)]


def test_a_wrong_secret_gives_up_without_showing_it(fake, client, factory, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong/secret+also-must-not-leak"
    transport = a_transport(fake, client, secret_access_key=wrong)
    with pytest.raises(TransportError) as caught:
        transport.send(some_messages(factory, 2))
    assert not caught.value.retry and "InvalidSignatureException" in str(caught.value)
    assert "secret_access_key" in caught.value.hint
    for text in (str(caught.value), caught.value.hint, repr(transport), caplog.text):
        assert wrong not in text and SECRET not in text


def test_without_botocore_the_error_says_what_to_install(monkeypatch, client):
    for name in [m for m in sys.modules if m == "botocore" or m.startswith("botocore.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "botocore", None)      # "import botocore" fails
    with pytest.raises(ConfigError) as caught:
        SesTransport(access_key_id=KEY_ID, secret_access_key=SECRET, client=client)
    assert "botocore" in str(caught.value)
    assert 'pip install "newsroom-digest[ses]"' in caught.value.hint


def test_close_leaves_the_shared_client_open(fake, client, factory):
    transport = a_transport(fake, client)
    transport.close()
    transport.send(some_messages(factory, 1))
    assert not client.is_closed and len(fake.accepted) == 1


# -- through the delivery path -------------------------------------------------------------


def test_an_edition_goes_out_through_ses_with_provider_ids_kept(tmp_path, sqlite_url, fake):
    fake.configuration_set = "digest-events"
    app = App(make_config(tmp_path, sqlite_url,
                          delivery={"transport": "ses", "batch_size": 3},
                          ses={"access_key_id": KEY_ID, "secret_access_key": SECRET,
                               "region": REGION, "configuration_set": "digest-events",
                               "base_url": fake.url}))
    an_edition_for_both_tiers(app)

    stats = app.deliverer(concurrency=2).run()

    assert stats.sent == 9 and stats.failed == stats.retried == 0
    accepted = {a.to[0]: a for a in fake.accepted}
    assert len(fake.accepted) == len(accepted) == 9
    assert_each_reader_got_their_variant({a: parts(m)[0] for a, m in accepted.items()})
    for address, message in accepted.items():
        assert address in parts(message)[1]
    for address, row in sent_deliveries(app).items():
        assert row.provider_message_id == accepted[address].message_id
        assert accepted[address].tags["delivery_id"] == str(row.id)


def _yesterday() -> str:
    from datetime import timedelta
    return (datetime.now(UTC) - timedelta(days=1)).strftime("%Y%m%d")
