"""DKIM: every message we build verifies with dkimpy against the public key, survives the SMTP
sink, and the DNS records `digest dns-records` prints hold that key."""

from __future__ import annotations

import email
import email.policy

import dkim
import pytest
from conftest import make_config
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support.outgoing import a_message, edition_messages

from digest.app import App
from digest.dkim import SIGNED_HEADERS, DkimKey, DkimSigner
from digest.errors import ConfigError


@pytest.fixture(scope="module")
def pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def dns_for(key: DkimKey):
    record = f"v=DKIM1; k=rsa; p={key.public_key_base64()}".encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{key.selector}._domainkey.{key.domain}.".encode() else None
    return lookup


def signed_by(factory, signer: DkimSigner, **kwargs) -> bytes:
    factory.builder_options["dkim"] = signer
    return a_message(factory, 1, **kwargs).raw


@pytest.mark.parametrize("name", ["Ada Lovelace", "Zoë Ünïcode-Müller", "", "=?utf-8?q?x?="])
def test_a_signed_message_verifies_with_dkimpy(pem, name):
    key = DkimKey.load("news.example.com", "digest", pem, source="test")
    raw = signed_by(edition_messages(), DkimSigner(key), name=name)

    assert dkim.verify(raw, dnsfunc=dns_for(key))
    header = email.message_from_bytes(raw, policy=email.policy.default)["DKIM-Signature"]
    tags = dict(part.strip().split("=", 1) for part in str(header).split(";") if "=" in part)
    assert tags["d"] == "news.example.com" and tags["s"] == "digest"
    assert tags["c"] == "relaxed/simple" and tags["a"] == "rsa-sha256"
    assert tags["h"].replace(" ", "").split(":") == list(SIGNED_HEADERS)


def test_a_changed_body_or_header_fails_verification(pem):
    key = DkimKey.load("news.example.com", "digest", pem, source="test")
    raw = signed_by(edition_messages(), DkimSigner(key))

    assert not dkim.verify(raw.replace(b"Harbour dues rise", b"Harbour dues fall", 1),
                           dnsfunc=dns_for(key))
    assert not dkim.verify(raw.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                       b"List-Unsubscribe-Post: List-Unsubscribe=Two-Clicks"),
                           dnsfunc=dns_for(key))


def test_the_morning_job_signs_through_smtp_and_the_key_may_come_from_the_environment(
        tmp_path, sqlite_url, smtp_server, pem, monkeypatch):
    from datetime import date

    from support.builders import an_entry, stored_posts

    from digest.config import config_from_dict
    from digest.jobs import send_edition

    base = make_config(tmp_path, sqlite_url).model_dump(by_alias=True, exclude={"base_dir"})
    raw_config = {**base, "delivery": {**base["delivery"], "transport": "smtp"},
                  "smtp": {**base["smtp"], "host": "127.0.0.1", "port": smtp_server.port,
                           "security": "none"},
                  "dkim": {"domain": "news.example.com", "selector": "digest"}}
    raw_config["web"]["secret_key"] = "test-secret"
    config = config_from_dict(raw_config, base_dir=tmp_path,
                              environ={"DIGEST_DKIM_PRIVATE_KEY": pem.decode()})
    app = App(config)
    app.lists.create("morning", "Morning Briefing")
    app.subscribers.add("jo@example.org", list_slug="morning", name="Jo")
    stored_posts(app.engine, an_entry())
    send_edition(app, "morning", date(2026, 11, 25))

    assert len(smtp_server.received) == 1
    received = smtp_server.received[0]
    data = received.data if isinstance(received.data, bytes) else received.data.encode()
    assert dkim.verify(data, dnsfunc=dns_for(app.dkim_signer.key))
    # The key never reaches a log line or an error text.
    assert app.scrubber.text(f"oops: {pem.decode()}") == "oops: [private key]"


def test_a_dkim_section_without_a_key_is_refused(tmp_path, sqlite_url):
    with pytest.raises(ConfigError, match="no key"):
        make_config(tmp_path, sqlite_url, dkim={"domain": "news.example.com",
                                                "selector": "digest"})
    with pytest.raises(ConfigError, match="selector"):
        make_config(tmp_path, sqlite_url, dkim={"domain": "news.example.com",
                                                "private_key_file": "dkim.pem"})


def test_a_key_file_that_is_not_a_key_says_so(tmp_path, sqlite_url):
    (tmp_path / "dkim.pem").write_text("not a key")
    app = App(make_config(tmp_path, sqlite_url, dkim={
        "domain": "news.example.com", "selector": "digest", "private_key_file": "dkim.pem"}))
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        app.dkim_signer


def test_dns_records_prints_spf_dkim_and_dmarc(tmp_path, sqlite_url, pem, digest):
    (tmp_path / "dkim.pem").write_bytes(pem)
    config = tmp_path / "digest.toml"
    config.write_text(
        '[delivery]\nfrom = "Ledger <digest@news.example.com>"\n'
        '[dkim]\ndomain = "news.example.com"\nselector = "digest"\n'
        'private_key_file = "dkim.pem"\ndmarc_reports = "dmarc@news.example.com"\n',
        encoding="utf-8")
    result = digest(config, "dns-records")
    public = DkimKey.load("news.example.com", "digest", pem, source="t").public_key_base64()

    assert result.exit_code == 0, result.output
    lines = {line.split(". IN TXT ")[0]: line.split(". IN TXT ")[1]
             for line in result.output.splitlines() if ". IN TXT " in line}
    dkim_value = "".join(part.strip('"') for part in lines[
        "digest._domainkey.news.example.com"].split('" "'))
    assert dkim_value == f"v=DKIM1; k=rsa; p={public}"
    assert lines["news.example.com"].startswith('"v=spf1')
    assert "rua=mailto:dmarc@news.example.com" in lines["_dmarc.news.example.com"]
