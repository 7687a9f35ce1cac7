"""The Mailgun transport against a fake messages API on loopback that checks the documented
request and rebuilds each recipient's message from it.

What a user relies on: every subscriber gets exactly the message we built. A message whose
headers differ per reader (a digest: its List-Unsubscribe is the reader's own) goes as its own
MIME message (``messages.mime``), since Mailgun documents no substitution in headers (issue 10,
item 12). Messages with the same headers for all go in batches: Mailgun receives each
variant's content once and fills in ``%recipient.…%`` per recipient in the bodies, in as few
requests as the API allows (one per variant, ≤1000 recipients, no address twice: recipient
variables are keyed by address); a refused request fails its recipients (Mailgun
does not say which); rate limits, server errors and timeouts become the right retry; and the
API key never appears in an error, a log or a repr.
"""

from __future__ import annotations

import base64
import dataclasses
import email
import email.policy
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from digest.app import App
from digest.errors import TransportError
from digest.outbound import Outcome
from digest.transports.mailgun import MailgunTransport, from_settings
from digest.transports.registry import TransportNeeds
from conftest import make_config
from support.builders import a_post
from support.fake_api import answer, hang, passes
from support.fake_mailgun import FakeMailgun, rate_limited, server_error
from support.outgoing import (ESCAPED_READER, MEMBERS_ONLY, TRICKY_NAMES, a_message,
                              an_edition_for_both_tiers, assert_each_reader_got_their_variant,
                              sent_deliveries, edition_messages, some_messages)

pytestmark = pytest.mark.timeout(25)

KEY = "key-test-must-not-leak"
DOMAIN = "mg.news.example.com"


@pytest.fixture
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun(domain=DOMAIN, api_key=KEY) as fake:
        yield fake


def a_transport(fake: FakeMailgun, client: httpx.Client, *, key: str = KEY) -> MailgunTransport:
    return MailgunTransport(api_key=key, domain=DOMAIN, client=client, base_url=fake.url)


def shared_headers(messages: list) -> list:
    """The messages without a List-Unsubscribe: headers the same for every reader (batched)."""
    return [dataclasses.replace(m, headers={k: v for k, v in m.headers.items()
                                             if k != "List-Unsubscribe"}) for m in messages]


def by_address(fake: FakeMailgun) -> dict:
    delivered = fake.delivered()
    assert len({d.address for d in delivered}) == len(delivered), "an address got two messages"
    return {d.address: d for d in delivered}


# -- personalisation survives substitution -------------------------------------------------


def test_every_recipient_rebuilt_from_the_requests_reads_exactly_the_message_we_built(
        fake, client, factory):
    messages = [a_message(factory, n, name=name, tier=("free", "client")[n % 2])
                for n, name in enumerate(TRICKY_NAMES, start=1)]
    results = a_transport(fake, client).send(messages)

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert len(fake.accepted) == len(messages)           # each reader's own MIME message
    delivered = by_address(fake)
    for message in messages:
        got = delivered[message.to_address]
        built = email.message_from_bytes(message.raw, policy=email.policy.default)
        assert got.html == built.get_body(("html",)).get_content()
        assert got.text == built.get_body(("plain",)).get_content()
        assert got.subject == message.subject
        assert got.name == message.to_name
        assert got.headers["List-Unsubscribe"] == message.headers["List-Unsubscribe"]
        assert got.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert got.headers["List-Id"] == message.headers["List-Id"]
        assert got.headers["Reply-To"] == message.headers["Reply-To"]
        assert got.variables == {"delivery-id": str(message.delivery_id)}
    obrien = delivered["reader2@example.org"]
    assert "morning O&#x27;Brien," in obrien.html and "morning O'Brien," in obrien.text
    assert "s1g?a=1&amp;b=&#x27;q&#x27;" in obrien.html and "s1g?a=1&b='q'" in obrien.text


def test_a_message_with_its_own_list_unsubscribe_is_the_documented_mime_send(fake, client,
                                                                            factory):
    # Mailgun documents recipient variables in the content, never in h: headers: a reader's
    # own List-Unsubscribe goes inside a MIME message of that reader's own.
    messages = some_messages(factory, 2)
    a_transport(fake, client).send(messages)

    assert len(fake.requests) == 2
    for request, accepted, message in zip(fake.requests, fake.accepted, messages):
        assert request.method == "POST" and request.path == f"/v3/{DOMAIN}/messages.mime"
        assert request.header("authorization") == \
            "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
        assert request.header("content-type").startswith("multipart/form-data")
        assert b'name="message"; filename=' in request.body
        assert accepted.all("to") == [message.to_address]
        assert accepted.all("o:tag") == [message.tag]
        assert accepted.get("v:delivery-id") == str(message.delivery_id)
        assert "%recipient." not in request.body.decode("utf-8", "replace")
        assert accepted.mime["List-Unsubscribe"] == message.headers["List-Unsubscribe"]
        assert accepted.mime["Message-ID"] == message.message_id


def test_messages_with_the_same_headers_for_all_are_the_documented_batch_send(fake, client,
                                                                            factory):
    messages = shared_headers(some_messages(factory, 3))
    a_transport(fake, client).send(messages)

    request = fake.requests[0]
    assert request.method == "POST" and request.path == f"/v3/{DOMAIN}/messages"
    assert request.header("authorization") == \
        "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    assert request.header("content-type").startswith("application/x-www-form-urlencoded")
    accepted = fake.accepted[0]
    assert accepted.all("to") == [f"Reader {n} <reader{n}@example.org>" for n in (1, 2, 3)]
    variables = json.loads(accepted.get("recipient-variables"))
    assert list(variables) == [m.to_address for m in messages]
    assert variables["reader1@example.org"]["h_first_name"] == "Reader"
    assert not [k for k, v in accepted.fields
                if k.startswith(("h:", "v:")) and "%recipient." in v]   # bodies only
    assert accepted.all("o:tag") == [messages[0].tag]
    html, text = accepted.get("html"), accepted.get("text")
    assert "%recipient.h_" in html and "%recipient.t_" not in html
    assert "%recipient.t_" in text and "%recipient.h_" not in text
    for message in messages:                              # nothing personal in the content
        assert message.to_address not in html + text
    delivered = by_address(fake)
    for message in messages:
        assert delivered[message.to_address].html == message.html
        assert delivered[message.to_address].text == message.text


def test_eu_domains_go_to_the_eu_api(tmp_path, sqlite_url):
    config = make_config(tmp_path, sqlite_url, delivery={"transport": "mailgun"},
                         mailgun={"api_key": KEY, "domain": DOMAIN, "region": "eu"})
    with httpx.Client() as client:
        transport = from_settings(config.mailgun, TransportNeeds(lambda: client))
    assert "https://api.eu.mailgun.net" in repr(transport) and KEY not in repr(transport)


# -- batches and limits --------------------------------------------------------------------


def test_a_batch_is_grouped_by_variant_and_split_at_1000_recipients(fake, client, factory):
    messages = shared_headers(some_messages(factory, 1001) + some_messages(
        factory, 3, tier="client", first=2001))
    results = a_transport(fake, client).send(messages)

    assert len(results) == 1004 and {r.outcome for r in results} == {Outcome.SENT}
    assert sorted(len(a.all("to")) for a in fake.accepted) == [1, 3, 1000]
    delivered = by_address(fake)
    assert len(delivered) == 1004
    assert all((MEMBERS_ONLY in delivered[m.to_address].html) == (m.variant == "full")
               for m in messages)
    ids = {a.message_id for a in fake.accepted}
    assert {r.provider_id for r in results} == ids


def test_an_address_twice_in_a_batch_goes_in_separate_requests(fake, client, factory):
    first = a_message(factory, 1, email="twice@example.org", name="First Subscription")
    second = a_message(factory, 2, email="Twice@Example.org", name="Second Subscription")
    results = a_transport(fake, client).send(shared_headers([first, second,
                                                             a_message(factory, 3)]))

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert sorted(len(a.all("to")) for a in fake.accepted) == [1, 2]
    firsts = {d.name: d for d in fake.delivered()}
    assert firsts["First Subscription"].html == first.html
    assert firsts["Second Subscription"].html == second.html


def test_a_story_that_contains_mailguns_variable_syntax_is_sent_one_by_one_as_written(
        fake, client):
    factory = edition_messages(a_post(title="How %recipient.name% works",
                                      body_html="<p>Write %recipient.first% in a mail.</p>"),
                               edition_id=43)
    messages = [a_message(factory, n, edition_id=43) for n in (1, 2)]
    results = a_transport(fake, client).send(messages)

    assert {r.outcome for r in results} == {Outcome.SENT}
    assert [len(a.all("to")) for a in fake.accepted] == [1, 1]
    assert all(not a.get("recipient-variables") for a in fake.accepted)
    delivered = by_address(fake)
    for message in messages:
        assert "%recipient.first%" in delivered[message.to_address].html
        assert delivered[message.to_address].headers["List-Unsubscribe"] == \
            message.headers["List-Unsubscribe"]


# -- refusals ------------------------------------------------------------------------------


def test_a_refused_batch_fails_all_its_recipients(fake, client, factory):
    fake.refuse = {"reader2@example.org"}
    results = a_transport(fake, client).send(shared_headers(some_messages(factory, 3)))
    assert {r.outcome for r in results} == {Outcome.FAILED}
    assert all("not a valid address" in r.error and not r.hard_bounce for r in results)
    assert fake.accepted == []


def test_a_refused_mime_message_fails_only_its_reader(fake, client, factory):
    fake.refuse = {"reader2@example.org"}
    results = a_transport(fake, client).send(some_messages(factory, 3))
    assert [r.outcome for r in results] == [Outcome.SENT, Outcome.FAILED, Outcome.SENT]


def test_a_rate_limit_raises_a_retry_after_retry_after(fake, client, factory):
    fake.script(rate_limited(retry_after=7))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send(some_messages(factory, 2))
    assert caught.value.retry and caught.value.retry_after == 7


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_raises_a_retry(fake, client, factory, status):
    fake.script(server_error(status))
    with pytest.raises(TransportError) as caught:
        a_transport(fake, client).send(some_messages(factory, 2))
    assert caught.value.retry and str(status) in str(caught.value)


def test_trouble_after_a_request_was_accepted_becomes_results_not_an_exception(
        fake, client, factory):
    fake.script(passes(), answer(503, b"busy", {"Retry-After": "11"}))
    free, paying = (shared_headers(some_messages(factory, 2)),
                    shared_headers(some_messages(factory, 2, tier="client", first=10)))
    results = {r.delivery_id: r for r in a_transport(fake, client).send(free + paying)}
    assert {results[m.delivery_id].outcome for m in free} == {Outcome.SENT}
    assert {(results[m.delivery_id].outcome, results[m.delivery_id].retry_after)
            for m in paying} == {(Outcome.RETRY, 11)}


def test_no_answer_in_time_may_have_been_sent(fake, factory):
    fake.script(hang(3))
    with httpx.Client(timeout=0.3) as slow, pytest.raises(TransportError) as caught:
        a_transport(fake, slow).send(shared_headers(some_messages(factory, 2)))  # one request
    assert caught.value.retry and caught.value.maybe_sent


def test_a_timeout_on_a_later_request_makes_only_that_one_uncertain(fake, factory):
    fake.script(passes(), hang(3))
    free, paying = some_messages(factory, 1), some_messages(factory, 1, tier="client", first=5)
    with httpx.Client(timeout=1) as slow:
        results = {r.delivery_id: r.outcome for r in a_transport(fake, slow).send(free + paying)}
    assert results == {1: Outcome.SENT, 5: Outcome.UNCERTAIN}


def test_a_wrong_key_gives_up_without_showing_the_key(fake, client, factory, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "key-wrong-also-secret"
    transport = a_transport(fake, client, key=wrong)
    with pytest.raises(TransportError) as caught:
        transport.send(some_messages(factory, 2))
    assert not caught.value.retry and "401" in str(caught.value)
    for text in (str(caught.value), caught.value.hint, repr(transport), caplog.text):
        assert wrong not in text and KEY not in text


def test_an_unknown_domain_gives_up_with_a_hint(fake, client, factory):
    transport = MailgunTransport(api_key=KEY, domain="other.example.com", client=client,
                                 base_url=fake.url)
    with pytest.raises(TransportError) as caught:
        transport.send(some_messages(factory, 1))
    assert not caught.value.retry and "region" in caught.value.hint


def test_close_leaves_the_shared_client_open(fake, client, factory):
    transport = a_transport(fake, client)
    transport.close()
    transport.send(some_messages(factory, 1))
    assert not client.is_closed and len(fake.accepted) == 1


# -- through the delivery path -------------------------------------------------------------


def test_an_edition_goes_out_through_mailgun_with_provider_ids_kept(tmp_path, sqlite_url,
                                                                    fake):
    app = App(make_config(tmp_path, sqlite_url,
                          delivery={"transport": "mailgun", "batch_size": 3},
                          mailgun={"api_key": KEY, "domain": DOMAIN,
                                   "base_url": fake.url}))
    an_edition_for_both_tiers(app)

    stats = app.deliverer(concurrency=2).run()

    assert stats.sent == 9 and stats.failed == stats.retried == 0
    delivered = by_address(fake)
    assert_each_reader_got_their_variant({a: d.html for a, d in delivered.items()})
    assert "morning O'Brien," in delivered[ESCAPED_READER].text
    for address, row in sent_deliveries(app).items():
        assert row.provider_message_id == delivered[address].message_id
        assert delivered[address].variables == {"delivery-id": str(row.id)}
