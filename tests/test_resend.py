"""The Resend transport against a fake Resend on loopback that checks the documented request
and keeps idempotency keys as Resend does."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from digest.errors import TransportError
from digest.transports import resend
from digest.outbound import Outcome, SendResult
from digest.transports.http import make_client
from digest.transports.registry import TransportNeeds
from digest.transports.resend import ResendTransport, idempotency_key
from conftest import make_config
from support.outgoing import SENDER, a_numbered_message
from support.fake_api import hang, passes
from support.fake_resend import FakeResend, error
from support.http_server import HttpServer
from test_deliver import an_app, an_edition, deliveries


@pytest.fixture
def fake() -> Iterator[FakeResend]:
    with FakeResend() as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    """The pauses the transport asked for (it never really sleeps in these tests)."""
    return []


def a_transport(fake: FakeResend, client: httpx.Client, sleeps: list[float],
                **options: object) -> ResendTransport:
    return ResendTransport(client, api_key=fake.api_key, base_url=fake.url,
                           sleep=sleeps.append, **options)


def by_id(results: list[SendResult]) -> dict[int, SendResult]:
    assert len({r.delivery_id for r in results}) == len(results), "one result per message"
    return {r.delivery_id: r for r in results}


# -- the request and the happy path ---------------------------------------------------------


def test_a_batch_goes_out_as_documented_and_each_message_keeps_resends_id(fake, client,
                                                                          sleeps):
    messages = [a_numbered_message(1), a_numbered_message(2), a_numbered_message(3)]
    results = by_id(a_transport(fake, client, sleeps).send(messages))

    assert [r.outcome for r in results.values()] == [Outcome.SENT] * 3
    ids = {a.address: a.id for a in fake.accepted}
    assert {n: r.provider_id for n, r in results.items()} == {
        n: ids[f"reader{n}@example.com"] for n in (1, 2, 3)}
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", "/emails/batch")
    assert request.header("authorization") == f"Bearer {fake.api_key}"
    assert request.header("x-batch-validation") == "permissive"
    key = request.header("idempotency-key")
    assert key == idempotency_key(messages) and 1 <= len(key) <= 256
    assert fake.accepted[0].email == {
        "from": SENDER, "to": ["Reader 1 <reader1@example.com>"],
        "subject": "Lanternport Ledger — 25 November 2026",
        "html": "<p>Good morning, reader 1.</p>", "text": "Good morning, reader 1.",
        "headers": {"List-Id": "Morning Briefing <morning.digest.example.com>",
                    "List-Unsubscribe": "<https://digest.example.com/unsubscribe/token-1>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "tags": [{"name": "delivery_id", "value": "1"},
                 {"name": "edition", "value": "morning-2026-11-25"}],
        "reply_to": "desk@news.example.com",
    }                                     # no Message-ID: Resend assigns its own
    assert sleeps == []


def test_tag_values_are_kept_to_the_characters_resend_allows(fake, client, sleeps):
    message = a_numbered_message(1, tag="morning 2026/11/25 — Zoë")
    assert a_transport(fake, client, sleeps).send([message])[0].outcome is Outcome.SENT
    assert fake.accepted[0].email["tags"][1] == {"name": "edition",
                                                 "value": "morning_2026_11_25___Zo_"}


def test_display_names_are_quoted_where_needed(fake, client, sleeps):
    a_transport(fake, client, sleeps).send([a_numbered_message(1, name='Okafor, Maren "M."'),
                                            a_numbered_message(2, name="")])
    assert [a.email["to"] for a in fake.accepted] == [
        ['"Okafor, Maren \\"M.\\"" <reader1@example.com>'], ["reader2@example.com"]]


def test_a_name_that_looks_encoded_is_quoted_and_the_sender_sent_in_plain_unicode(
        fake, client, sleeps):
    message = a_numbered_message(1, name="=?utf-8?q?Mallory?=")
    message.from_header = "=?utf-8?q?Zo=C3=AB=27s_Ledger=2C_Daily?= <digest@news.example.com>"
    a_transport(fake, client, sleeps).send([message])
    sent = fake.accepted[0].email
    assert sent["to"] == ['"=?utf-8?q?Mallory?=" <reader1@example.com>']
    assert sent["from"] == "\"Zoë's Ledger, Daily\" <digest@news.example.com>"


def test_the_public_api_is_the_default_address(tmp_path):
    config = make_config(tmp_path, "sqlite://", delivery={"transport": "resend"},
                         resend={"api_key": "re_x"})
    with httpx.Client() as client:
        transport = resend.from_settings(config.resend, TransportNeeds(lambda: client))
    assert transport._api.base_url == "https://api.resend.com"


# -- batch limits and per-email errors ------------------------------------------------------


def test_more_than_100_messages_go_out_in_requests_of_at_most_100(fake, client, sleeps):
    results = by_id(a_transport(fake, client, sleeps).send(
        [a_numbered_message(n) for n in range(1, 102)]))
    assert fake.batch_sizes == [100, 1]
    assert len(results) == 101 and all(r.outcome is Outcome.SENT for r in results.values())
    assert len(set(fake.keys)) == 2                       # a key of its own per request


def test_an_invalid_recipient_fails_alone_and_the_ids_around_it_stay_right(fake, client,
                                                                           sleeps):
    fake.invalid.update({"typo@example.com", "also-bad@example.com"})
    messages = [a_numbered_message(1), a_numbered_message(2, to="typo@example.com"), a_numbered_message(3),
                a_numbered_message(4, to="also-bad@example.com"), a_numbered_message(5)]
    results = by_id(a_transport(fake, client, sleeps).send(messages))

    assert (results[2].outcome, results[4].outcome) == (Outcome.FAILED, Outcome.FAILED)
    assert "Invalid `to` field" in results[2].error
    assert not results[2].hard_bounce                    # a refused address is no bounce
    ids = {a.address: a.id for a in fake.accepted}
    assert {n: results[n].provider_id for n in (1, 3, 5)} == {
        n: ids[f"reader{n}@example.com"] for n in (1, 3, 5)}
    assert fake.accepted_addresses() == ["reader1@example.com", "reader3@example.com",
                                         "reader5@example.com"]


# -- idempotency ----------------------------------------------------------------------------


def test_the_same_batch_sent_twice_goes_out_once(fake, client, sleeps):
    messages = [a_numbered_message(1), a_numbered_message(2)]
    transport = a_transport(fake, client, sleeps)
    first = by_id(transport.send(messages))
    again = by_id(transport.send(messages))
    assert len(fake.accepted) == 2 and fake.replays == 1
    assert {n: r.provider_id for n, r in again.items()} == {
        n: r.provider_id for n, r in first.items()}


def test_a_timeout_is_retried_with_the_same_key_and_the_batch_goes_out_once(fake, sleeps):
    fake.script(hang(2.0))              # Resend creates the emails, the answer comes too late
    messages = [a_numbered_message(1), a_numbered_message(2)]
    with make_client(timeout=0.3) as client:
        results = by_id(a_transport(fake, client, sleeps).send(messages))

    assert all(r.outcome is Outcome.SENT for r in results.values())
    assert len(fake.accepted) == 2 and fake.replays == 1
    assert len(fake.requests) == 2 and fake.keys[0] == fake.keys[1] == idempotency_key(messages)
    ids = {a.address: a.id for a in fake.accepted}
    assert results[1].provider_id == ids["reader1@example.com"]
    assert len(sleeps) == 1


def test_server_errors_are_retried_in_place_with_capped_backoff(fake, client, sleeps):
    fake.script(error(500, "internal_server_error", times=2))
    transport = a_transport(fake, client, sleeps, backoff_seconds=0.5,
                            max_backoff_seconds=0.75)
    results = transport.send([a_numbered_message(1)])
    assert results[0].outcome is Outcome.SENT and len(fake.accepted) == 1
    assert len(fake.requests) == 3 and len(set(fake.keys)) == 1
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] and all(s <= 1.0 for s in sleeps)   # 1.0: the fake's reset


def test_server_errors_that_do_not_stop_end_in_a_transport_error(fake, client, sleeps):
    fake.script(error(503, "internal_server_error", times=10))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client, sleeps, attempts=3).send([a_numbered_message(1)])
    assert caught.value.retry and not caught.value.maybe_sent
    assert "3 attempts" in str(caught.value)
    assert len(fake.requests) == 3 and len(sleeps) == 2 and fake.accepted == []


def test_when_every_attempt_times_out_the_batch_may_have_been_sent(fake, sleeps):
    fake.script(hang(2.0, times=2))
    with make_client(timeout=0.3) as client, pytest.raises(TransportError) as caught:
        a_transport(fake, client, sleeps, attempts=2).send([a_numbered_message(1)])
    assert caught.value.retry and caught.value.maybe_sent
    assert len(fake.accepted) == 1                       # created once, never twice


def test_an_unreachable_server_is_retried_then_reported_as_not_sent(client, sleeps):
    with HttpServer() as gone:
        url = gone.url                                   # a port nobody listens on any more
    transport = ResendTransport(client, api_key="re_x", base_url=url, sleep=sleeps.append,
                                attempts=2)
    with pytest.raises(TransportError) as caught:
        transport.send([a_numbered_message(1)])
    assert caught.value.retry and not caught.value.maybe_sent and len(sleeps) == 1


def test_a_request_still_in_progress_is_waited_for_with_the_same_key(fake, client, sleeps):
    fake.script(error(409, "concurrent_idempotent_requests", "Same idempotency key used while "
                      "original request is still in progress."))
    results = a_transport(fake, client, sleeps).send([a_numbered_message(1)])
    assert results[0].outcome is Outcome.SENT and len(fake.accepted) == 1
    assert len(set(fake.keys)) == 1 and len(sleeps) == 1


def test_the_same_deliveries_with_another_body_are_not_sent_again(fake, client, sleeps):
    transport = a_transport(fake, client, sleeps)
    transport.send([a_numbered_message(1), a_numbered_message(2)])
    results = transport.send([a_numbered_message(1, html="<p>rebuilt</p>"), a_numbered_message(2)])
    assert [r.outcome for r in results] == [Outcome.UNCERTAIN] * 2
    assert "invalid_idempotent_request" in results[0].error
    assert len(fake.accepted) == 2 and sleeps == []


# -- rate limits and quotas -----------------------------------------------------------------


def test_a_long_rate_limit_pause_goes_back_to_the_queue_with_retry_after(fake, client,
                                                                          sleeps):
    fake.script(error(429, "rate_limit_exceeded", "Too many requests.",
                      headers={"retry-after": "30"}))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client, sleeps).send([a_numbered_message(1)])
    assert (caught.value.retry, caught.value.retry_after) == (True, 30.0)
    assert not caught.value.maybe_sent and sleeps == [] and len(fake.requests) == 1


def test_a_short_rate_limit_pause_is_waited_out(fake, client, sleeps):
    fake.script(error(429, "rate_limit_exceeded", headers={"retry-after": "2"}))
    results = a_transport(fake, client, sleeps).send([a_numbered_message(1)])
    assert results[0].outcome is Outcome.SENT
    assert len(sleeps) == 1 and sleeps[0] >= 2.0


def test_a_used_up_daily_quota_waits_for_the_next_day(fake, client, sleeps):
    fake.script(error(429, "daily_quota_exceeded", "You have reached your daily email quota.",
                      headers={"retry-after": "5"}))
    transport = a_transport(fake, client, sleeps,
                            clock=lambda: datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    with pytest.raises(TransportError) as caught:
        transport.send([a_numbered_message(1)])
    assert caught.value.retry and caught.value.retry_after == 17 * 3600
    assert "quota" in caught.value.hint and sleeps == [] and len(fake.requests) == 1


def test_a_used_up_monthly_quota_waits_a_day_at_least(fake, client, sleeps):
    fake.script(error(429, "monthly_quota_exceeded"))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client, sleeps).send([a_numbered_message(1)])
    assert caught.value.retry_after >= 86400


# -- refusals -------------------------------------------------------------------------------


def test_bad_credentials_stop_the_run_without_showing_the_key(fake, client, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "re_wrong_key_9z8y7x"
    transport = ResendTransport(client, api_key=secret, base_url=fake.url,
                                sleep=sleeps.append)
    with pytest.raises(TransportError) as caught:
        transport.send([a_numbered_message(1)])
    error = caught.value
    assert error.retry is False and "403" in str(error) and "api_key" in error.hint
    assert secret not in str(error) and secret not in (error.hint or "")
    assert secret not in caplog.text
    assert fake.accepted == [] and len(fake.requests) == 1 and sleeps == []


def test_an_unverified_sender_domain_stops_the_run_with_a_hint(fake, client, sleeps):
    fake.script(error(403, "validation_error", "You can only send testing emails to your own "
                      "email address. To send emails to other recipients, please verify a "
                      "domain"))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client, sleeps).send([a_numbered_message(1)])
    assert caught.value.retry is False and "resend.com/domains" in caught.value.hint


def test_a_sender_refused_for_every_email_is_a_config_problem(fake, client, sleeps):
    messages = [a_numbered_message(1), a_numbered_message(2)]
    for message in messages:
        message.from_header = "Ledger Digest <digest-at-news.example.com>"
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client, sleeps).send(messages)
    assert caught.value.retry is False and "[delivery] from" in caught.value.hint
    assert fake.accepted == []


def test_a_refused_request_fails_its_messages(fake, client, sleeps):
    fake.script(error(422, "invalid_parameter", "Something in the batch is not right."))
    results = a_transport(fake, client, sleeps).send([a_numbered_message(1), a_numbered_message(2)])
    assert [r.outcome for r in results] == [Outcome.FAILED] * 2
    assert "invalid_parameter" in results[0].error


def test_an_error_after_a_first_request_went_through_keeps_its_results(fake, client, sleeps):
    fake.script(passes(), error(500, "application_error"), error(500, "application_error"),
                error(500, "application_error"), error(500, "application_error"))
    results = by_id(a_transport(fake, client, sleeps, max_batch=2).send(
        [a_numbered_message(n) for n in range(1, 5)]))
    assert [results[n].outcome for n in range(1, 5)] == [
        Outcome.SENT, Outcome.SENT, Outcome.RETRY, Outcome.RETRY]


def test_a_sender_side_error_after_a_first_request_stops_and_keeps_what_was_sent(
        fake, client, sleeps):
    # Credentials (or our `from`) refused: the run must stop, not burn the rest as retries.
    fake.script(passes(), error(401, "missing_api_key"))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client, sleeps, max_batch=2).send(
            [a_numbered_message(n) for n in range(1, 5)])
    assert caught.value.retry is False
    assert [(r.delivery_id, r.outcome) for r in caught.value.handed_over] == [
        (1, Outcome.SENT), (2, Outcome.SENT)]


def test_closing_leaves_the_shared_client_open(fake, client, sleeps):
    transport = a_transport(fake, client, sleeps)
    transport.close()
    assert not client.is_closed
    assert transport.send([a_numbered_message(1)])[0].outcome is Outcome.SENT


# -- the fake checks what Resend checks -----------------------------------------------------


def test_the_fake_refuses_what_resend_would(fake, client):
    def post(body: object, *, key: str = fake.api_key, idempotency: str = "",
             mode: str = "permissive") -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                   "x-batch-validation": mode}
        if idempotency:
            headers["Idempotency-Key"] = idempotency
        return client.post(f"{fake.url}/emails/batch", content=json.dumps(body),
                           headers=headers)

    good = {"from": SENDER, "to": ["a@example.com"], "subject": "s", "text": "t"}
    assert post([good]).status_code == 200
    assert post([good], key="re_other").json()["name"] == "invalid_api_key"
    assert post([good] * 101).status_code == 422
    assert post([{**good, "replyTo": "x@example.com"}]).json()["errors"][0]["index"] == 0
    assert post([{**good, "tags": [{"name": "id", "value": "a b"}]}]).json()["errors"]
    assert post([good, {**good, "to": ["nope"]}], mode="strict").status_code == 422
    assert post([good], idempotency="k1").status_code == 200
    assert post([good], idempotency="k1").status_code == 200          # replayed
    assert post([{**good, "subject": "other"}], idempotency="k1").status_code == 409
    assert post([good], idempotency="k" * 257).json()["name"] == "invalid_idempotency_key"
    assert len(fake.accepted) == 2 and fake.replays == 1


# -- end to end -----------------------------------------------------------------------------


def test_an_edition_goes_out_through_resend_end_to_end(tmp_path, sqlite_url, fake):
    fake.invalid.add("typo@example.com")
    app = an_app(tmp_path, sqlite_url, delivery={"transport": "resend", "batch_size": 2},
                 resend={"api_key": fake.api_key, "base_url": fake.url})
    readers = [f"reader{n}@example.com" for n in range(1, 6)]
    an_edition(app, *readers, "typo@example.com")
    try:
        stats = app.deliverer(concurrency=2).run()
    finally:
        app.api_http_client("resend").close()

    assert (stats.sent, stats.failed) == (5, 1)
    assert fake.accepted_addresses() == readers             # each exactly once
    ids = {a.address: a.id for a in fake.accepted}
    rows = deliveries(app)
    assert {email: rows[email].provider_message_id for email in readers} == ids
    assert all(rows[email].status == "sent" for email in readers)
    typo = rows["typo@example.com"]
    assert typo.status == "failed" and "Invalid `to` field" in typo.last_error
    assert app.suppressions.is_suppressed("typo@example.com") is None
    tags = {t["name"]: t["value"] for t in fake.accepted[0].email["tags"]}
    assert int(tags["delivery_id"]) == rows[fake.accepted[0].address].id
