"""One secret scrubber for every adapter's errors and every log line.

A provider that echoes our credential back in a 401 (as written, as ``Bearer <key>``, or as the
base64 of Mailgun's ``api:<key>`` Basic credentials) must not get it printed: the loopback fakes
below answer with such a body, after checking the key as the real API does.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote

import pytest

from digest.app import App
from digest.errors import TransportError
from digest.scrub import Scrubber
from conftest import make_config
from support.fake_mailgun import FakeMailgun
from support.fake_sendgrid import FakeSendgrid
from support.fake_api import answer
from support.outgoing import some_messages

KEY = "SG.key+with/odd=chars-0123456789"


def echoing_401(key: str):
    """A 401 whose body quotes the request's credentials in every form they travel in."""
    basic = base64.b64encode(f"api:{key}".encode()).decode()
    body = {"errors": [{"field": None, "message": f"bad key {key}; header 'Bearer {key}'; "
                                                  f"basic {basic}; url ?key={quote(key)}; "
                                                  f"b64 {base64.b64encode(key.encode()).decode()}"}],
            "message": f"Forbidden for {key} ({basic})"}
    return answer(401, body)


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_a_401_that_echoes_the_key_does_not_print_it(provider, tmp_path, sqlite_url,
                                                     factory, caplog):
    fake = FakeSendgrid(api_key=KEY) if provider == "sendgrid" else FakeMailgun(api_key=KEY)
    with fake:
        section = {"api_key": KEY, "base_url": fake.url}
        if provider == "mailgun":
            section["domain"] = fake.domain
        fake.script(echoing_401(KEY))
        app = App(make_config(tmp_path, sqlite_url, delivery={"transport": provider},
                              **{provider: section}))
        caplog.set_level(logging.DEBUG)
        with pytest.raises(TransportError) as caught:
            app.transport().send(some_messages(factory, 2))
    assert "401" in str(caught.value) and "[api key]" in str(caught.value)
    basic = base64.b64encode(f"api:{KEY}".encode()).decode()
    for text in (str(caught.value), caught.value.hint or "", caplog.text):
        for form in (KEY, quote(KEY, safe=""), basic, base64.b64encode(KEY.encode()).decode()):
            assert form not in text


def test_every_form_of_a_secret_is_replaced_by_its_label():
    scrub = Scrubber([("api key", KEY), ("token", "tok-123456")])
    basic = base64.b64encode(f"api:{KEY}".encode()).decode()
    text = (f"Authorization: Bearer {KEY}, Basic {basic}, ?k={quote(KEY, safe='')}, "
            f"{base64.b64encode(KEY.encode()).decode().rstrip('=')}, X-Token: tok-123456")
    assert scrub.text(text) == ("Authorization: Bearer [api key], Basic [api key], ?k=[api key], "
                                "[api key], X-Token: [token]")


def test_empty_and_one_letter_secrets_are_not_scrubbed():
    scrub = Scrubber([("password", ""), ("username", "p")])
    assert scrub.text("a plain sentence") == "a plain sentence"


def test_an_error_without_secrets_is_kept_as_it_is():
    scrub = Scrubber([("api key", KEY)])
    exc = TransportError("sendgrid: server error 500", retry=True, retry_after=3.0)
    assert scrub.error(exc) is exc
    leaked = scrub.error(TransportError(f"no {KEY}", retry=True, maybe_sent=True,
                                        hint=f"key {KEY}"))
    assert (leaked.message, leaked.hint, leaked.retry, leaked.maybe_sent) == (
        "no [api key]", "key [api key]", True, True)


def test_as_a_logging_filter_it_scrubs_every_line(caplog):
    logger = logging.getLogger("test_scrub.filter")
    scrub = Scrubber([("api key", KEY)])
    logger.addFilter(scrub)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.info("request to %s with key=%s", "https://api.example.com", KEY)
            try:
                raise ValueError(f"echoed {KEY}")
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeFilter(scrub)
    assert KEY not in caplog.text and "key=[api key]" in caplog.text


def test_the_app_scrubber_knows_every_configured_secret(tmp_path):
    app = App(make_config(tmp_path, "sqlite://", postmark={"token": "pm-token-1"},
                          ses={"secret_access_key": "aws-secret-1"},
                          smtp={"password": "smtp-password-1"}))
    text = app.scrubber.text("pm-token-1 aws-secret-1 smtp-password-1 test-secret")
    assert text == "[token] [secret access key] [password] [secret key]"

