"""Issue 10, item 12: through Mailgun, every reader's List-Unsubscribe is that reader's own
working link — without resting on ``%recipient.…%`` substitution inside ``h:`` headers, which
Mailgun's documentation does not promise. Such messages go as per-reader MIME
(``messages.mime``); the fake API refuses a recipient variable in any header, as the documented
behaviour gives no reason to expect it to be filled in.

An edition goes out through the delivery path to a fake Mailgun on loopback; each reader's
one-click link is then checked to carry a token that verifies as that very reader's.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import make_config
from support.fake_mailgun import FakeMailgun
from support.outgoing import FREE, PAYING, an_edition_for_both_tiers, sent_deliveries

from digest.app import App

KEY = "key-test-must-not-leak"
DOMAIN = "mg.news.example.com"


@pytest.fixture
def fake() -> Iterator[FakeMailgun]:
    with FakeMailgun(domain=DOMAIN, api_key=KEY) as fake:
        yield fake


def test_each_reader_gets_their_own_list_unsubscribe_and_it_works(tmp_path, sqlite_url, fake):
    app = App(make_config(tmp_path, sqlite_url,
                          delivery={"transport": "mailgun", "batch_size": 4},
                          mailgun={"api_key": KEY, "domain": DOMAIN, "base_url": fake.url}))
    an_edition_for_both_tiers(app)

    stats = app.deliverer(concurrency=2).run()

    assert stats.sent == len(FREE + PAYING) and stats.failed == 0
    delivered = {d.address: d for d in fake.delivered()}
    links = {address: d.headers["List-Unsubscribe"] for address, d in delivered.items()}
    assert all("%recipient" not in link for link in links.values())
    assert len(set(links.values())) == len(links)            # each reader's own
    for address, row in sent_deliveries(app).items():
        assert delivered[address].headers["List-Unsubscribe-Post"] == \
            "List-Unsubscribe=One-Click"
        assert delivered[address].variables == {"delivery-id": str(row.id)}
        https = [part.strip(" <>") for part in links[address].split(",")
                 if part.strip(" <>").startswith("https://")]
        assert len(https) == 1 and https[0].startswith(app.config.web.base_url)
        token = https[0].rsplit("/", 1)[1]
        assert app.unsubscribe_signer.verify(token).subscriber_id == row.subscriber_id
