"""Issue 10, item 3 (SSRF): a feed's redirect never makes the collector fetch — and mail — another
host's internal address.

The configured source listens on 127.0.0.1; "another host's internal address" is a second real
server on 127.0.0.2 (loopback too, but not the host the admin configured). Both are real HTTP
servers, fetched through httpx.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_config
from sqlalchemy import select
from sqlmodel import Session
from support.builders import a_feed_source, an_entry, an_rss_feed
from support.http_server import HttpServer

import digest.sources.addresses as addresses
from digest.app import App
from digest.collect import collect, collect_one
from digest.errors import SourceError
from digest.models import Post, SourceState
from digest.sources.addresses import AddressRule, kind_of, literal
from digest.sources.base import Validators

SECRET = an_rss_feed(an_entry(guid="internal-1", title="INTERNAL: admin credentials"))


@pytest.fixture
def internal():
    with HttpServer(host="127.0.0.2") as server:
        server.serve_bytes("/secret.xml", SECRET)
        yield server


def stored_titles(engine) -> list[str]:
    with Session(engine) as session:
        return [post.title for post in session.scalars(select(Post))]


def test_a_redirect_to_another_hosts_loopback_address_is_refused_and_nothing_stored(
        engine, http_server, internal, client):
    http_server.redirect("/feed.xml", f"{internal.url}/secret.xml")

    report = collect_one(engine, a_feed_source(http_server.url + "/feed.xml", client=client))

    assert "refused to follow a redirect" in report.error
    assert "127.0.0.2, a loopback address" in report.error
    assert internal.requests == []          # refused before a byte was sent there
    assert stored_titles(engine) == []
    with Session(engine) as session:
        state = session.get(SourceState, "newsroom")
        assert state.last_status == "error" and "allow_private_redirects" in state.last_error


@pytest.fixture
def internal_by_name():
    """A loopback server reached by the name "localhost" (only DNS says where that leads)."""
    with HttpServer() as server:
        server.serve_bytes("/secret.xml", SECRET)
        server.by_name = server.url.replace("127.0.0.1", "localhost")
        yield server


def test_a_redirect_by_name_to_a_loopback_address_is_refused_after_dns(
        sqlite_engine, http_server, internal_by_name, client):
    http_server.redirect("/feed.xml", f"{internal_by_name.by_name}/secret.xml")

    report = collect_one(sqlite_engine, a_feed_source(http_server.url + "/feed.xml",
                                                      client=client))

    assert "refused to follow a redirect to http://localhost" in report.error
    assert internal_by_name.requests == []
    assert stored_titles(sqlite_engine) == []


def test_dns_rebinding_is_caught_by_the_address_actually_connected_to(
        sqlite_engine, http_server, internal_by_name, client, monkeypatch):
    # The name looked public when checked, and then the connection went to loopback: the
    # check before connecting is fooled, the one on the connected socket is not.
    http_server.redirect("/feed.xml", f"{internal_by_name.by_name}/secret.xml")
    monkeypatch.setattr(addresses, "resolve", lambda host, port: [literal("93.184.215.14")])

    report = collect_one(sqlite_engine, a_feed_source(http_server.url + "/feed.xml",
                                                      client=client))

    assert "it leads to 127.0.0.1, a loopback address" in report.error
    assert len(internal_by_name.requests) == 1      # it connected, and stored nothing
    assert stored_titles(sqlite_engine) == []


def test_allow_private_redirects_lets_an_intranet_redirect_through(
        engine, http_server, internal, client, tmp_path: Path, database_url: str):
    http_server.redirect("/feed.xml", f"{internal.url}/secret.xml")
    config = make_config(tmp_path, database_url,
                         sources=[{"name": "intranet", "url": http_server.url + "/feed.xml"}],
                         collect={"allow_private_redirects": True})

    [report] = collect(engine, App(config, engine=engine).sources(client))

    assert report.ok, report.error
    assert stored_titles(engine) == ["INTERNAL: admin credentials"]


def test_the_configured_host_is_trusted_as_configured_and_may_redirect_within_itself(
        sqlite_engine, internal, client):
    internal.redirect("/old.xml", "/secret.xml", status=301)

    report = collect_one(sqlite_engine, a_feed_source(internal.url + "/old.xml", client=client))

    assert report.ok, report.error
    assert report.new == 1


@pytest.mark.parametrize("allow_private", [False, True], ids=["default", "private-allowed"])
@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/iam/",
                                    "http://[fe80::1]/feed.xml",
                                    "http://[::ffff:169.254.169.254]/"])
def test_a_redirect_to_link_local_or_metadata_is_refused_always(
        http_server, client, target, allow_private):
    http_server.redirect("/feed.xml", target)
    source = a_feed_source(http_server.url + "/feed.xml", client=client,
                           allow_private_redirects=allow_private)

    with pytest.raises(SourceError, match="link-local") as caught:
        source.fetch(Validators())

    assert "names the address itself" in caught.value.hint


def test_a_source_that_names_a_link_local_address_itself_may_use_it():
    rule = AddressRule("http://169.254.10.20/feed.xml")
    assert rule.refusal("http://169.254.10.20/feed.xml", literal("169.254.10.20")) is None
    # … but a name that DNS points at the metadata service is refused, configured or not.
    named = AddressRule("http://feeds.example.com/feed.xml")
    assert named.refusal("http://feeds.example.com/feed.xml",
                         literal("169.254.169.254")) is not None


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.2", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("fd00:ec2::254", "unique-local"), ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("::1", "loopback"),
    ("::ffff:10.0.0.1", "private"), ("100.64.0.1", "reserved"), ("93.184.215.14", ""),
    ("2606:4700::1111", ""),
])
def test_every_kind_of_internal_address_is_named(address, kind):
    assert kind_of(literal(address)) == kind
