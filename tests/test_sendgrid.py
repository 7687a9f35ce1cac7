"""The SendGrid transport against a fake Mail Send API on loopback that checks the documented
request and rebuilds each recipient's message from it.

What a user relies on: every subscriber gets exactly the message we built — name, address and
unsubscribe link in the right form in each part — although SendGrid receives each variant's
content once and personalises it by substitution; a batch goes out in as few requests as the
API allows (one per variant, ≤1000 personalizations, no address twice); a rejected recipient
fails alone; rate limits, server errors and timeouts become the right retry; and the API key
never appears in an error, a log or a repr.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from digest.app import App
from digest.errors import TransportError
from digest.outbound import Outcome
from digest.transports.sendgrid import SendgridTransport
from conftest import make_config
from support.fake_api import answer, hang, passes
from support.fake_sendgrid import FakeSendgrid, rate_limited, server_error
from support.outgoing import (ESCAPED_READER, MEMBERS_ONLY, TRICKY_NAMES, a_message,
                              an_edition_for_both_tiers, assert_each_reader_got_their_variant,
                              sent_deliveries, some_messages)

pytestmark = pytest.mark.timeout(25)

KEY = "SG.test-key-must-not-leak"


@pytest.fixture
def fake() -> Iterator[FakeSendgrid]:
    with FakeSendgrid(api_key=KEY) as fake:
        yield fake


def a_transport(fake: FakeSendgrid, client: httpx.Client, *, key: str = KEY
                ) -> SendgridTransport:
    return SendgridTransport(api_key=key, client=client, base_url=fake.url)


def by_address(fake: FakeSendgrid) -> dict:
    delivered = fake.delivered()
    assert len({d.email for d in delivered}) == len(delivered), "an address got two messages"
    return {d.email: d for d in delivered}


# -- personalisation survives substitution -------------------------------------------------


def test_every_recipient_rebuilt_from_the_requests_reads_exactly_the_message_we_built(
        fake, client, factory):
    messages = [a_message(factory, n, name=name, tier=("free", "client")[n % 2])
                for n, name in enumerate(TRICKY_NAMES, start=1)]
    results = a_transport(fake, client).send(messages)

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert len(fake.accepted) == 2                       # one request per variant
    delivered = by_address(fake)
    for message in messages:
        got = delivered[message.to_address]
        assert got.html == message.html
        assert got.text == message.text
        assert got.subject == message.subject
        assert got.name == message.to_name if message.to_name else got.name == ""
        assert got.headers["List-Unsubscribe"] == message.headers["List-Unsubscribe"]
        assert got.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert got.headers["List-Id"] == message.headers["List-Id"]
        assert got.custom_args == {"delivery_id": str(message.delivery_id)}
    # The escaped and the raw value differ, and each part got its own.
    obrien = delivered["reader2@example.org"]
    assert "morning O&#x27;Brien," in obrien.html and "morning O'Brien," in obrien.text
    assert "s1g?a=1&amp;b=&#x27;q&#x27;" in obrien.html and "s1g?a=1&b='q'" in obrien.text


def test_content_goes_once_per_request_with_distinct_tags_for_html_and_text(fake, client,
                                                                           factory):
    messages = some_messages(factory, 3)
    a_transport(fake, client).send(messages)

    body = fake.accepted[0].body
    text, html = (part["value"] for part in body["content"])
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    for message in messages:                              # nothing personal in the content
        assert message.to_address not in html + text
    tags = body["personalizations"][0]["substitutions"]
    html_tags = {t for t in tags if t in html}
    text_tags = {t for t in tags if t in text}
    assert html_tags and text_tags and not html_tags & text_tags
    assert html_tags | text_tags == set(tags)
    # Tags come from a nonce per request: another request, other tags.
    a_transport(fake, client).send(some_messages(factory, 1, first=9))
    assert not set(fake.accepted[1].body["personalizations"][0]["substitutions"]) & set(tags)


def test_the_request_is_the_documented_mail_send(fake, client, factory):
    message = a_message(factory, 1, name="Ada Lovelace")
    a_transport(fake, client).send([message])

    request = fake.requests[0]
    assert request.method == "POST" and request.path == "/v3/mail/send"
    assert request.header("authorization") == f"Bearer {KEY}"
    assert request.header("content-type") == "application/json"
    body = fake.accepted[0].body
    assert body["from"] == {"email": "digest@news.example.com", "name": "Ledger Digest"}
    assert body["reply_to"] == {"email": "letters@news.example.com", "name": "Letters Desk"}
    assert body["subject"] == message.subject
    assert body["headers"] == {"List-Id": message.headers["List-Id"]}
    assert body["categories"] == [message.tag] and re.fullmatch(r"[\w.:-]+", message.tag)
    (item,) = body["personalizations"]
    assert item["to"] == [{"email": "reader1@example.org", "name": "Ada Lovelace"}]
    assert set(item) == {"to", "substitutions", "headers", "custom_args"}


# -- batches and limits --------------------------------------------------------------------


def test_a_batch_is_grouped_by_variant_and_split_at_1000_personalizations(fake, client,
                                                                           factory):
    messages = some_messages(factory, 1001) + some_messages(factory, 3, tier="client",
                                                            first=2001)
    results = a_transport(fake, client).send(messages)

    assert len(results) == 1004 and {r.outcome for r in results} == {Outcome.SENT}
    sizes = sorted(len(a.body["personalizations"]) for a in fake.accepted)
    assert sizes == [1, 3, 1000]
    delivered = by_address(fake)
    assert len(delivered) == 1004
    assert all((MEMBERS_ONLY in delivered[m.to_address].html) == (m.variant == "full")
               for m in messages)


def test_an_address_twice_in_a_batch_goes_in_separate_requests(fake, client, factory):
    first = a_message(factory, 1, email="twice@example.org", name="First Subscription")
    second = a_message(factory, 2, email="Twice@Example.org", name="Second Subscription")
    results = a_transport(fake, client).send([first, second, a_message(factory, 3)])

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert sorted(len(a.body["personalizations"]) for a in fake.accepted) == [1, 2]
    names = sorted(d.name for d in fake.delivered())
    assert names == ["First Subscription", "Reader 3", "Second Subscription"]


def test_values_over_the_substitution_limit_go_alone_with_their_content_written_out(
        fake, client, factory):
    huge = a_message(factory, 1, name="&" * 3000)        # 15 kB escaped, over 10,000 bytes
    others = some_messages(factory, 2, first=2)
    results = a_transport(fake, client).send([huge, *others])

    assert {r.outcome for r in results} == {Outcome.SENT}
    alone = next(a.body for a in fake.accepted if len(a.body["personalizations"]) == 1)
    assert "substitutions" not in alone["personalizations"][0]
    delivered = by_address(fake)
    for message in (huge, *others):
        assert delivered[message.to_address].html == message.html
        assert delivered[message.to_address].text == message.text


def test_a_message_without_templates_is_sent_as_it_is(fake, client, factory):
    message = a_message(factory, 1)
    message.html_template = message.text_template = None
    a_transport(fake, client).send([message])
    (got,) = fake.delivered()
    assert (got.html, got.text) == (message.html, message.text)


# -- refusals ------------------------------------------------------------------------------


def test_a_recipient_sendgrid_refuses_fails_alone_and_the_rest_is_sent_once_more(
        fake, client, factory):
    messages = some_messages(factory, 2) + [a_message(factory, 3, email="not-an-address")] \
        + some_messages(factory, 2, first=4)
    results = {r.delivery_id: r for r in a_transport(fake, client).send(messages)}

    assert len(fake.requests) == 2 and len(fake.accepted) == 1
    bad = results[3]
    assert bad.outcome is Outcome.FAILED and bad.hard_bounce
    assert "personalizations.2.to.0.email" in bad.error
    sent = [results[n] for n in (1, 2, 4, 5)]
    assert {r.outcome for r in sent} == {Outcome.SENT}
    assert {r.provider_id for r in sent} == {fake.accepted[0].message_id}
    assert sorted(d.email for d in fake.delivered()) == sorted(
        m.to_address for m in messages if m.delivery_id != 3)


def test_a_refusal_that_names_no_recipient_fails_the_whole_request(fake, client, factory):
    fake.script(answer(400, b'{"errors":[{"field":"from.email","message":"The from '
                            b'address does not match a verified Sender Identity."}]}'))
    results = a_transport(fake, client).send(some_messages(factory, 3))
    assert {r.outcome for r in results} == {Outcome.FAILED}
    assert all("verified Sender Identity" in r.error and not r.hard_bounce for r in results)
    assert len(fake.requests) == 1


def test_a_rate_limit_raises_a_retry_after_x_ratelimit_reset(fake, client, factory):
    fake.script(rate_limited(reset_in=60))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send(some_messages(factory, 2))
    assert caught.value.retry and not caught.value.maybe_sent
    assert 50 < caught.value.retry_after <= 60


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_raises_a_retry(fake, client, factory, status):
    fake.script(server_error(status))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send(some_messages(factory, 2))
    assert caught.value.retry and str(status) in str(caught.value)


def test_trouble_after_a_request_was_accepted_becomes_results_not_an_exception(
        fake, client, factory):
    fake.script(passes(), rate_limited(reset_in=30))
    free, client_tier = some_messages(factory, 2), some_messages(factory, 2, tier="client",
                                                                 first=10)
    results = {r.delivery_id: r for r in a_transport(fake, client).send(free + client_tier)}
    assert {results[m.delivery_id].outcome for m in free} == {Outcome.SENT}
    waiting = [results[m.delivery_id] for m in client_tier]
    assert {r.outcome for r in waiting} == {Outcome.RETRY}
    assert all(20 < r.retry_after <= 30 for r in waiting)


def test_no_answer_in_time_may_have_been_sent(fake, factory):
    fake.script(hang(3))
    with httpx.Client(timeout=0.3) as slow, pytest.raises(TransportError) as caught:
        a_transport(fake, slow).send(some_messages(factory, 2))
    assert caught.value.retry and caught.value.maybe_sent


def test_a_wrong_key_gives_up_without_showing_the_key(fake, client, factory, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "SG.wrong-key-also-secret"
    transport = a_transport(fake, client, key=wrong)
    with pytest.raises(TransportError) as caught:
        transport.send(some_messages(factory, 2))
    assert not caught.value.retry and "401" in str(caught.value)
    assert "sendgrid" in caught.value.hint
    for text in (str(caught.value), caught.value.hint, repr(transport), caplog.text):
        assert wrong not in text and KEY not in text


def test_close_leaves_the_shared_client_open(fake, client, factory):
    transport = a_transport(fake, client)
    transport.close()
    transport.send(some_messages(factory, 1))
    assert not client.is_closed and len(fake.accepted) == 1


# -- through the delivery path -------------------------------------------------------------


def test_an_edition_goes_out_through_sendgrid_with_provider_ids_kept(tmp_path, sqlite_url,
                                                                     fake):
    app = App(make_config(tmp_path, sqlite_url,
                          delivery={"transport": "sendgrid", "batch_size": 3},
                          sendgrid={"api_key": KEY, "base_url": fake.url}))
    an_edition_for_both_tiers(app)

    stats = app.deliverer(concurrency=2).run()

    assert stats.sent == 9 and stats.failed == stats.retried == 0
    delivered = by_address(fake)
    assert_each_reader_got_their_variant({a: d.html for a, d in delivered.items()})
    assert "morning O'Brien," in delivered[ESCAPED_READER].text
    for address, row in sent_deliveries(app).items():
        assert row.provider_message_id == delivered[address].message_id
        assert delivered[address].custom_args == {"delivery_id": str(row.id)}
