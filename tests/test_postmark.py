"""The Postmark transport against a fake Postmark on loopback that checks the documented request."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from digest.errors import TransportError
from digest.transports import postmark
from digest.outbound import Outcome, SendResult
from digest.transports.http import make_client
from digest.transports.postmark import PostmarkTransport
from digest.transports.registry import TransportNeeds
from conftest import make_config
from support.outgoing import SENDER, a_numbered_message
from support.fake_api import answer, hang, passes
from support.fake_postmark import FakePostmark
from test_deliver import an_app, an_edition, deliveries


@pytest.fixture
def fake() -> Iterator[FakePostmark]:
    with FakePostmark() as fake:
        yield fake


def a_transport(fake: FakePostmark, client: httpx.Client, **options: object) -> PostmarkTransport:
    return PostmarkTransport(client, token=fake.token, base_url=fake.url, **options)


def by_id(results: list[SendResult]) -> dict[int, SendResult]:
    assert len({r.delivery_id for r in results}) == len(results), "one result per message"
    return {r.delivery_id: r for r in results}


# -- the request and the happy path ---------------------------------------------------------


def test_a_batch_goes_out_as_documented_and_each_message_keeps_postmarks_id(fake, client):
    results = by_id(a_transport(fake, client).send([a_numbered_message(1), a_numbered_message(2), a_numbered_message(3)]))

    assert [r.outcome for r in results.values()] == [Outcome.SENT] * 3
    ids = {a.address: a.message_id for a in fake.accepted}
    assert {n: r.provider_id for n, r in results.items()} == {
        n: ids[f"reader{n}@example.com"] for n in (1, 2, 3)}
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", "/email/batch")
    assert request.header("x-postmark-server-token") == fake.token
    assert request.header("accept") == "application/json"
    first = fake.accepted[0].message
    assert first == {
        "From": SENDER, "To": "Reader 1 <reader1@example.com>",
        "Subject": "Lanternport Ledger — 25 November 2026",
        "HtmlBody": "<p>Good morning, reader 1.</p>", "TextBody": "Good morning, reader 1.",
        "MessageStream": "broadcast", "Tag": "morning-2026-11-25",
        "ReplyTo": "desk@news.example.com",
        "Headers": [
            {"Name": "List-Id", "Value": "Morning Briefing <morning.digest.example.com>"},
            {"Name": "List-Unsubscribe",
             "Value": "<https://digest.example.com/unsubscribe/token-1>"},
            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"}],
        "Metadata": {"delivery_id": "1"},
    }                                     # no Message-ID: Postmark assigns its own


def test_display_names_are_quoted_where_an_address_list_needs_it(fake, client):
    people = [a_numbered_message(1, name='Okafor, Maren "M."'), a_numbered_message(2, name="Zoë Ångström"),
              a_numbered_message(3, name="")]
    a_transport(fake, client).send(people)
    assert [a.to for a in fake.accepted] == [
        '"Okafor, Maren \\"M.\\"" <reader1@example.com>',
        '"Zoë Ångström" <reader2@example.com>', "reader3@example.com"]
    assert fake.accepted_addresses() == [f"reader{n}@example.com" for n in (1, 2, 3)]


def test_a_name_that_looks_encoded_is_quoted_and_the_sender_sent_in_plain_unicode(fake, client):
    message = a_numbered_message(1, name="=?utf-8?q?Mallory?=")
    message.from_header = "=?utf-8?q?Zo=C3=AB=27s_Ledger=2C_Daily?= <digest@news.example.com>"
    a_transport(fake, client).send([message])
    sent = fake.accepted[0].message
    assert sent["To"] == '"=?utf-8?q?Mallory?=" <reader1@example.com>'
    assert sent["From"] == "\"Zoë's Ledger, Daily\" <digest@news.example.com>"


def test_the_configured_message_stream_is_used(tmp_path, fake, client):
    fake.message_stream = "digest-broadcasts"
    config = make_config(tmp_path, "sqlite://",
                         delivery={"transport": "postmark"},
                         postmark={"token": fake.token, "base_url": fake.url,
                                   "message_stream": "digest-broadcasts"})
    transport = postmark.from_settings(config.postmark, TransportNeeds(lambda: client))
    assert transport.send([a_numbered_message(1)])[0].outcome is Outcome.SENT
    assert fake.accepted[0].message["MessageStream"] == "digest-broadcasts"


def test_the_public_api_is_the_default_address(tmp_path):
    config = make_config(tmp_path, "sqlite://",
                         delivery={"transport": "postmark"}, postmark={"token": "t"})
    with httpx.Client() as client:
        transport = postmark.from_settings(config.postmark, TransportNeeds(lambda: client))
    assert transport._api.base_url == "https://api.postmarkapp.com"


# -- batch limits ---------------------------------------------------------------------------


def test_more_than_500_messages_go_out_in_requests_of_at_most_500(fake, client):
    messages = [a_numbered_message(n) for n in range(1, 502)]
    results = by_id(a_transport(fake, client).send(messages))
    assert fake.batch_sizes == [500, 1]
    assert len(results) == 501 and all(r.outcome is Outcome.SENT for r in results.values())
    assert len(fake.accepted) == 501


def test_requests_stay_under_the_payload_limit(fake, client):
    limit = 2_000
    messages = [a_numbered_message(n, html="<p>" + "x" * 500 + "</p>") for n in range(1, 11)]
    results = a_transport(fake, client, max_payload_bytes=limit).send(messages)
    assert all(r.outcome is Outcome.SENT for r in results) and len(results) == 10
    assert len(fake.batch_sizes) > 1 and sum(fake.batch_sizes) == 10
    assert all(len(r.body) <= limit for r in fake.requests)
    assert fake.accepted_addresses() == sorted(f"reader{n}@example.com" for n in range(1, 11))


def test_a_message_too_large_for_postmark_fails_without_a_request(fake, client):
    transport = a_transport(fake, client, max_message_bytes=5_000)
    results = by_id(transport.send([a_numbered_message(1, html="x" * 6_000), a_numbered_message(2)]))
    assert results[1].outcome is Outcome.FAILED and "bytes" in results[1].error
    assert results[2].outcome is Outcome.SENT
    assert fake.accepted_addresses() == ["reader2@example.com"]


# -- per-recipient answers ------------------------------------------------------------------


def test_per_recipient_failures_do_not_stop_the_batch(fake, client):
    fake.inactive.add("gone@example.com")
    fake.invalid.add("typo@example.com")
    fake.item_errors["busy@example.com"] = (429, "Rate limit exceeded.")
    fake.item_errors["nobody@example.com"] = (300, "Provide either email TextBody or "
                                                   "HtmlBody or both.")
    messages = [a_numbered_message(1), a_numbered_message(2, to="gone@example.com"),
                a_numbered_message(3, to="typo@example.com"), a_numbered_message(4, to="busy@example.com"),
                a_numbered_message(5, to="nobody@example.com"), a_numbered_message(6)]
    results = by_id(a_transport(fake, client).send(messages))

    assert results[1].outcome is results[6].outcome is Outcome.SENT
    assert (results[2].outcome, results[2].hard_bounce) == (Outcome.FAILED, True)
    assert "inactive" in results[2].error
    assert (results[3].outcome, results[3].hard_bounce) == (Outcome.FAILED, True)
    assert "Invalid 'To' address" in results[3].error
    assert results[4].outcome is Outcome.RETRY
    assert (results[5].outcome, results[5].hard_bounce) == (Outcome.FAILED, False)
    assert fake.accepted_addresses() == ["reader1@example.com", "reader6@example.com"]


def test_an_account_problem_stops_the_run_with_a_hint(fake, client):
    for n in (1, 2):
        fake.item_errors[f"reader{n}@example.com"] = (412, "Your account is pending.")
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send([a_numbered_message(1), a_numbered_message(2)])
    assert caught.value.retry is False and "pending approval" in caught.value.hint


def test_an_account_problem_after_some_were_accepted_keeps_those(fake, client):
    fake.item_errors["reader2@example.com"] = (405, "Not allowed to send.")
    results = by_id(a_transport(fake, client).send([a_numbered_message(1), a_numbered_message(2)]))
    assert results[1].outcome is Outcome.SENT            # accepted: must be recorded as sent
    assert results[2].outcome is Outcome.RETRY and "credits" in results[2].error


def test_a_sender_refused_by_postmark_is_a_config_problem(fake, client):
    for n in (1, 2):
        fake.item_errors[f"reader{n}@example.com"] = (300, "Invalid 'From' address: 'x'.")
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send([a_numbered_message(1), a_numbered_message(2)])
    assert caught.value.retry is False and "[delivery] from" in caught.value.hint


# -- whole-request answers ------------------------------------------------------------------


def test_a_rate_limited_request_is_retried_after_what_postmark_asked(fake, client):
    fake.script(answer(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"},
                       {"Retry-After": "30"}))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send([a_numbered_message(1)])
    assert (caught.value.retry, caught.value.retry_after) == (True, 30.0)
    assert not caught.value.maybe_sent and fake.accepted == []


def test_a_server_error_is_retried_later(fake, client):
    fake.script(answer(500, {"ErrorCode": 0, "Message": "Internal Server Error"}))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send([a_numbered_message(1)])
    assert caught.value.retry and not caught.value.maybe_sent


def test_a_timeout_may_have_sent_so_the_batch_is_maybe_sent(fake):
    fake.script(hang(2.0))
    with make_client(timeout=0.3) as client, pytest.raises(TransportError) as caught:
        a_transport(fake, client).send([a_numbered_message(1), a_numbered_message(2)])
    assert caught.value.retry and caught.value.maybe_sent
    assert len(fake.accepted) == 2            # it did go: that is why it must not be resent


def test_a_refused_request_fails_its_messages(fake, client):
    fake.script(answer(422, {"ErrorCode": 300, "Message": "Invalid email request"}))
    results = a_transport(fake, client).send([a_numbered_message(1), a_numbered_message(2)])
    assert [r.outcome for r in results] == [Outcome.FAILED] * 2
    assert not any(r.hard_bounce for r in results)
    assert "Invalid email request" in results[0].error


def test_a_refused_request_for_an_account_reason_stops_the_run(fake, client):
    fake.script(answer(422, {"ErrorCode": 413, "Message": "Account may not send"}))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send([a_numbered_message(1)])
    assert caught.value.retry is False and "support" in caught.value.hint


def test_bad_credentials_stop_the_run_without_showing_the_token(fake, client, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "pm-wrong-token-a1b2c3"
    transport = PostmarkTransport(client, token=secret, base_url=fake.url)
    with pytest.raises(TransportError) as caught:
        transport.send([a_numbered_message(1)])
    error = caught.value
    assert error.retry is False and "401" in str(error)
    assert secret not in str(error) and secret not in (error.hint or "")
    assert secret not in caplog.text and secret not in repr(transport.__dict__.get("_api"))
    assert fake.accepted == []


def test_an_answer_that_echoes_the_token_does_not_carry_it_into_the_error(fake, client):
    fake.script(answer(401, {"ErrorCode": 10, "Message": f"Bad token {fake.token}"}))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send([a_numbered_message(1)])
    assert fake.token not in str(caught.value) and "[token]" in str(caught.value)


def test_an_error_after_a_first_request_went_through_keeps_its_results(fake, client):
    fake.script(passes(), answer(500, {"ErrorCode": 0, "Message": "Internal Server Error"}))
    transport = a_transport(fake, client, max_batch=2)
    results = by_id(transport.send([a_numbered_message(n) for n in range(1, 6)]))
    assert [results[n].outcome for n in range(1, 6)] == [
        Outcome.SENT, Outcome.SENT, Outcome.RETRY, Outcome.RETRY, Outcome.RETRY]
    assert fake.accepted_addresses() == ["reader1@example.com", "reader2@example.com"]


def test_a_timeout_after_a_first_request_leaves_only_that_request_uncertain(fake):
    fake.script(passes(), hang(2.0))
    with make_client(timeout=0.3) as client:
        results = by_id(a_transport(fake, client, max_batch=2).send(
            [a_numbered_message(n) for n in range(1, 6)]))
    assert [results[n].outcome for n in range(1, 6)] == [
        Outcome.SENT, Outcome.SENT, Outcome.UNCERTAIN, Outcome.UNCERTAIN, Outcome.RETRY]


def test_closing_leaves_the_shared_client_open(fake, client):
    transport = a_transport(fake, client)
    transport.close()
    assert not client.is_closed
    assert transport.send([a_numbered_message(1)])[0].outcome is Outcome.SENT


# -- the fake checks what Postmark checks ---------------------------------------------------


def test_the_fake_refuses_what_postmark_would(fake, client):
    def post(body: object, token: str = fake.token) -> httpx.Response:
        return client.post(f"{fake.url}/email/batch", content=json.dumps(body),
                           headers={"X-Postmark-Server-Token": token,
                                    "Accept": "application/json",
                                    "Content-Type": "application/json"})

    good = {"From": SENDER, "To": "a@example.com", "Subject": "s", "TextBody": "t",
            "MessageStream": "broadcast"}
    assert post([good]).status_code == 200
    assert post([good], token="other").json()["ErrorCode"] == 10
    assert post([good] * 501).json()["ErrorCode"] == 410
    assert post({**good}).status_code == 422                      # not an array
    assert post([{**good, "htmlBody": "<p>"}]).status_code == 422  # field names are PascalCase
    assert post([{**good, "Metadata": {"delivery_id": 1}}]).status_code == 422
    assert len(fake.accepted) == 1


# -- end to end -----------------------------------------------------------------------------


def test_an_edition_goes_out_through_postmark_end_to_end(tmp_path, sqlite_url, fake):
    fake.inactive.add("gone@example.com")
    app = an_app(tmp_path, sqlite_url, delivery={"transport": "postmark", "batch_size": 2},
                 postmark={"token": fake.token, "base_url": fake.url})
    readers = [f"reader{n}@example.com" for n in range(1, 6)]
    an_edition(app, *readers, "gone@example.com")
    try:
        stats = app.deliverer(concurrency=2).run()
    finally:
        app.api_http_client("postmark").close()

    assert (stats.sent, stats.failed) == (5, 1)
    assert fake.accepted_addresses() == readers            # each exactly once
    ids = {a.address: a.message_id for a in fake.accepted}
    rows = deliveries(app)
    assert {email: rows[email].provider_message_id for email in readers} == ids
    assert all(rows[email].status == "sent" for email in readers)
    gone = rows["gone@example.com"]
    assert gone.status == "failed" and "inactive" in gone.last_error
    assert app.suppressions.is_suppressed("gone@example.com") is not None
    assert app.suppressions.is_suppressed("reader1@example.com") is None
    unsubscribe = fake.accepted[0].header("List-Unsubscribe")
    assert unsubscribe and unsubscribe.startswith("<https://digest.example.com/unsubscribe/")
