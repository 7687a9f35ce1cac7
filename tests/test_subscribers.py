"""Lists and subscribers: add, import, export, unsubscribe, remove — on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlmodel import Session

from digest.errors import InputError, NotFoundError
from digest.models import Delivery, Edition
from subscribers.csv_io import csv_safe, csv_unsafe
from subscribers.models import MailingList, Subscriber, Subscription, Suppression
from subscribers.service import SubscriberService, active_recipients
from subscribers.validation import (FAST_ADDRESS, check_slug, check_tier, clean_name,
                                    normalise_email)

TIERS = ["free", "client"]


# -- helpers ---------------------------------------------------------------------------------

@pytest.fixture
def service(engine) -> SubscriberService:
    """A service with the tiers free (the default) and client, and a list 'morning'."""
    service = SubscriberService(engine, tiers=TIERS, default_tier="free")
    service.lists.create("morning", "Morning Briefing")
    return service


def a_csv(tmp_path: Path, text: str, *, name: str = "people.csv", encoding: str = "utf-8",
          bom: bool = False) -> Path:
    """A CSV file with exactly these characters (no newline translation)."""
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def count(engine, model) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def subscribers_by_key(engine) -> dict[str, Subscriber]:
    with Session(engine) as session:
        return {s.email_key: s for s in session.scalars(select(Subscriber))}


def status_of(engine, email_key: str, slug: str = "morning") -> str | None:
    with Session(engine) as session:
        return session.scalar(
            select(Subscription.status)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Subscriber.email_key == email_key, MailingList.slug == slug))


def recipients(engine, service: SubscriberService, slug: str = "morning") -> set[str]:
    list_id = service.lists.get(slug).id
    with Session(engine) as session:
        ids = session.scalars(active_recipients(list_id)).all()
        return set(session.scalars(select(Subscriber.email_key)
                                   .where(Subscriber.id.in_(ids))).all()) if ids else set()


def suppress(engine, email_key: str, reason: str = "bounce") -> None:
    with Session(engine) as session:
        session.add(Suppression(email_key=email_key, reason=reason))
        session.commit()


def rows_as_tuples(service: SubscriberService, slug: str) -> list[tuple[str, str, str, str]]:
    return [(r.email, r.name, r.tier, r.status) for r in service.rows(slug)]


# -- addresses -------------------------------------------------------------------------------

def test_addresses_are_stored_trimmed_with_the_domain_lower_cased_and_in_ascii(engine, service):
    assert service.add("  Ann.Lee@EXAMPLE.Com ", list_slug="morning").created
    service.add("bo@bücher.example.org", list_slug="morning")
    stored = subscribers_by_key(engine)
    assert set(stored) == {"ann.lee@example.com", "bo@xn--bcher-kva.example.org"}
    assert stored["ann.lee@example.com"].email == "Ann.Lee@example.com"


def test_the_domain_is_not_looked_up_in_dns_by_default():
    # There is no DNS here: with the check on, this domain could not be confirmed.
    assert normalise_email("reader@no-such-domain-for-digest-tests.org") == (
        "reader@no-such-domain-for-digest-tests.org",) * 2
    assert SubscriberService(None, tiers=TIERS, default_tier="free").check_deliverability is False


@pytest.mark.parametrize("address", [
    "", "   ", "not-an-address", "ann@", "@example.com", "ann@@example.com", "ann@localhost",
    "ann lee@example.com", "ännä@example.com", "ann@example.com\r\nBcc: all@example.com",
    "ann@exam\nple.com", "ann\x00@example.com", "ann@exa mple.com",
])
def test_an_invalid_address_is_refused(address):
    with pytest.raises(InputError) as raised:
        normalise_email(address)
    assert "address" in raised.value.message


def test_adding_an_invalid_address_stores_nothing(engine, service):
    with pytest.raises(InputError, match="not a valid email address"):
        service.add("ann@example.com\r\nBcc: all@example.com", list_slug="morning")
    assert count(engine, Subscriber) == 0
    assert count(engine, Subscription) == 0


def test_adding_the_same_address_in_another_case_updates_the_one_subscriber(engine, service):
    first = service.add("ann@example.com", list_slug="morning", name="Ann")
    second = service.add("ANN@Example.com", list_slug="morning", name="Ann Lee")
    assert first.created and not second.created
    assert first.subscriber.id == second.subscriber.id
    assert count(engine, Subscriber) == 1
    assert count(engine, Subscription) == 1
    stored = subscribers_by_key(engine)["ann@example.com"]
    assert (stored.email, stored.name) == ("ANN@example.com", "Ann Lee")


def test_a_second_add_changes_only_what_it_is_given(engine, service):
    assert service.add("bob@example.com", list_slug="morning").subscriber.tier == "free"
    service.add("ann@example.com", list_slug="morning", name="Ann", tier="client")
    service.add("ann@example.com", list_slug="morning")
    stored = subscribers_by_key(engine)["ann@example.com"]
    assert (stored.name, stored.tier) == ("Ann", "client")
    service.add("ann@example.com", list_slug="morning", tier="free")
    stored = subscribers_by_key(engine)["ann@example.com"]
    assert (stored.name, stored.tier) == ("Ann", "free")


def test_an_unknown_tier_is_an_error_that_lists_the_known_tiers(engine, service):
    with pytest.raises(InputError) as raised:
        service.add("ann@example.com", list_slug="morning", tier="gold")
    assert "'gold'" in raised.value.message
    assert "free, client" in raised.value.message
    assert raised.value.hint
    assert count(engine, Subscriber) == 0


def test_tiers_are_case_sensitive_names():
    assert check_tier(" client ", TIERS) == "client"
    with pytest.raises(InputError, match="known tiers: free, client"):
        check_tier("Client", TIERS)


def test_adding_to_an_unknown_list_stores_nothing(engine, service):
    with pytest.raises(NotFoundError) as raised:
        service.add("ann@example.com", list_slug="evening")
    assert "morning" in (raised.value.hint or "")
    assert count(engine, Subscriber) == 0


# -- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "Ann\r\nBcc: everyone@example.com", "Ann\nLee", "Ann\rLee", "Ann\x00Lee", "Ann\tLee",
    "Ann\x1b[31mLee", "Ann\x7fLee", "Ann\u0085Lee", "Ann\u2028Lee", "Ann\u2029Lee",
])
def test_a_name_with_a_line_break_or_control_character_is_refused(name):
    # CVE-2024-6923: a line break in a name could end the To: header and start another.
    with pytest.raises(InputError) as raised:
        clean_name(name)
    assert "line break or control character" in raised.value.message
    assert raised.value.hint == "names must be one line of text"


def test_an_added_name_is_stored_clean_and_a_bad_one_not_at_all(engine, service):
    with pytest.raises(InputError, match="line break"):
        service.add("ann@example.com", list_slug="morning", name="Ann\r\nBcc: all@example.com")
    assert count(engine, Subscriber) == 0
    service.add("zoe@example.com", list_slug="morning", name="  Zoe\u0308 ")
    assert subscribers_by_key(engine)["zoe@example.com"].name == "Zoë"


def test_a_name_is_trimmed_and_normalised_to_nfc():
    assert clean_name("  Zoe\u0308 A\u030angstro\u0308m  ") == "Zoë Ångström"
    assert clean_name(None) == ""


def test_a_name_may_be_200_characters_long_but_not_201():
    assert clean_name("a" * 200) == "a" * 200
    with pytest.raises(InputError, match="201 characters"):
        clean_name("b" * 201)


# -- unsubscribe, re-subscribe, suppression --------------------------------------------------

def test_an_add_re_subscribes_someone_who_left_only_when_asked(engine, service):
    service.add("ann@example.com", list_slug="morning", name="Ann")
    assert service.unsubscribe("ann@example.com", list_slug="morning") == 1
    assert status_of(engine, "ann@example.com") == "unsubscribed"
    with pytest.raises(InputError, match="unsubscribed from morning") as refused:
        service.add("Ann@example.com", list_slug="morning", name="Someone else")
    assert "--resubscribe" in refused.value.hint and refused.value.exit_code == 2
    assert status_of(engine, "ann@example.com") == "unsubscribed"
    assert service.get_subscriber("ann@example.com").name == "Ann"      # nothing changed
    result = service.add("Ann@example.com", list_slug="morning", resubscribe=True)
    assert result.resubscribed and not result.created
    assert status_of(engine, "ann@example.com") == "active"
    assert count(engine, Subscription) == 1
    assert not service.add("ann@example.com", list_slug="morning").resubscribed


def test_unsubscribe_from_one_list_leaves_the_others(engine, service):
    service.lists.create("evening", "Evening Edition")
    service.add("ann@example.com", list_slug="morning")
    service.add("ann@example.com", list_slug="evening")
    assert service.unsubscribe("ANN@example.com", list_slug="evening") == 1
    assert status_of(engine, "ann@example.com", "morning") == "active"
    assert status_of(engine, "ann@example.com", "evening") == "unsubscribed"
    assert service.unsubscribe("ann@example.com", list_slug="evening") == 0
    # Without a list: every list.
    assert service.unsubscribe("ann@example.com") == 1
    assert status_of(engine, "ann@example.com", "morning") == "unsubscribed"


def test_one_click_unsubscribe_by_id_changes_only_that_subscription(engine, service):
    service.lists.create("evening", "Evening Edition")
    ann = service.add("ann@example.com", list_slug="morning").subscriber
    service.add("ann@example.com", list_slug="evening")
    morning = service.lists.get("morning")
    assert service.unsubscribe_by_id(ann.id, morning.id) is True
    assert service.unsubscribe_by_id(ann.id, morning.id) is False
    assert status_of(engine, "ann@example.com", "morning") == "unsubscribed"
    assert status_of(engine, "ann@example.com", "evening") == "active"


def test_adding_a_suppressed_address_says_so(engine, service):
    suppress(engine, "ann@example.com", "complaint")
    result = service.add("Ann@Example.com", list_slug="morning")
    assert result.suppressed_reason == "complaint"
    assert service.add("bob@example.com", list_slug="morning").suppressed_reason == ""


# -- active recipients -----------------------------------------------------------------------

def test_active_recipients_are_the_active_unsuppressed_subscribers_of_the_list(engine, service):
    service.lists.create("evening", "Evening Edition")
    for address in ("ann@example.com", "bob@example.com", "cy@example.com", "Dee@example.com"):
        service.add(address, list_slug="morning")
    service.add("eve@example.com", list_slug="evening")
    service.unsubscribe("bob@example.com", list_slug="morning")
    suppress(engine, "cy@example.com")
    suppress(engine, "dee@example.com")  # the suppression's key is lower case, like email_key
    assert recipients(engine, service, "morning") == {"ann@example.com"}
    assert recipients(engine, service, "evening") == {"eve@example.com"}


# -- lists -----------------------------------------------------------------------------------

@pytest.mark.parametrize("slug", [
    "", "Morning", "morning brief", "morning_brief", "-morning", "morning/brief", "mörning",
    "a" * 65, "morning\n",
])
def test_a_bad_list_slug_is_refused_with_an_example(slug):
    with pytest.raises(InputError) as raised:
        check_slug(slug)
    assert "slug" in raised.value.message
    assert "morning-brief" in (raised.value.hint or "")


@pytest.mark.parametrize("slug", ["a", "7", "morning-brief", "2026-weekly", "a" * 64])
def test_good_list_slugs_are_accepted(slug):
    assert check_slug(slug) == slug


def test_a_list_is_created_only_with_a_good_slug(engine):
    service = SubscriberService(engine, tiers=TIERS, default_tier="free")
    with pytest.raises(InputError, match="slug"):
        service.lists.create("Morning Brief", "A list")
    assert count(engine, MailingList) == 0
    mailing_list, created = service.lists.create("morning-brief", "A list")
    assert created and mailing_list.slug == "morning-brief"
    assert service.lists.get("morning-brief").id == mailing_list.id


def test_creating_a_list_twice_is_an_error_unless_exist_ok(engine, service):
    with pytest.raises(InputError, match="already exists"):
        service.lists.create("morning", "Another name")
    existing, created = service.lists.create("morning", "Another name", exist_ok=True)
    assert not created
    assert existing.name == "Morning Briefing"
    assert count(engine, MailingList) == 1


def test_a_list_name_is_one_line_and_defaults_to_the_slug(engine):
    service = SubscriberService(engine, tiers=TIERS, default_tier="free")
    with pytest.raises(InputError, match="line break"):
        service.lists.create("weekly", "Weekly\r\nBcc: all@example.com")
    assert count(engine, MailingList) == 0
    mailing_list, _ = service.lists.create("weekly", "  ")
    assert mailing_list.name == "weekly"


def test_get_list_of_an_unknown_slug_names_the_known_ones(engine):
    service = SubscriberService(engine, tiers=TIERS, default_tier="free")
    with pytest.raises(NotFoundError) as raised:
        service.lists.get("morning")
    assert "digest lists create" in (raised.value.hint or "")
    service.lists.create("morning", "Morning Briefing")
    service.lists.create("evening", "Evening Edition")
    with pytest.raises(NotFoundError) as raised:
        service.lists.get("noon")
    assert "'noon'" in raised.value.message
    assert raised.value.hint == "known lists: evening, morning"


def test_lists_are_counted_by_active_and_unsubscribed_subscribers(engine, service):
    service.lists.create("evening", "Evening Edition")
    service.lists.create("empty", "Nobody here")
    for address in ("ann@example.com", "bob@example.com", "cy@example.com"):
        service.add(address, list_slug="morning")
    service.add("ann@example.com", list_slug="evening")
    service.unsubscribe("bob@example.com", list_slug="morning")
    counts = {lst.slug: (active, gone) for lst, active, gone in service.lists.with_counts()}
    assert counts == {"empty": (0, 0), "evening": (1, 0), "morning": (2, 1)}


# -- CSV import ------------------------------------------------------------------------------

def test_an_import_stores_each_good_row(engine, service, tmp_path):
    path = a_csv(tmp_path, "email,name,tier\n"
                           "ann@example.com,Ann Lee,client\n"
                           " Bob@Example.com , Bob ,\n"
                           "cy@example.com,,free\n")
    report = service.import_csv(path, list_slug="morning")
    assert (report.added, report.updated, report.unchanged, report.errors) == (3, 0, 0, [])
    assert rows_as_tuples(service, "morning") == [
        ("ann@example.com", "Ann Lee", "client", "active"),
        ("Bob@example.com", "Bob", "free", "active"),
        ("cy@example.com", "", "free", "active"),
    ]


def test_the_header_may_name_the_columns_in_any_order_and_case(engine, service, tmp_path):
    path = a_csv(tmp_path, "Tier, EMAIL ,Name,city\r\nclient,ann@example.com,Ann,Lanternport\r\n")
    report = service.import_csv(path, list_slug="morning")
    assert report.added == 1 and not report.errors
    assert report.warnings == ["ignored unknown column(s): city"]
    report = service.import_csv(a_csv(tmp_path, "email\nbob@example.com\n", name="only.csv"),
                                list_slug="morning")
    assert (report.added, report.warnings) == (1, [])
    assert rows_as_tuples(service, "morning") == [("ann@example.com", "Ann", "client", "active"),
                                                  ("bob@example.com", "", "free", "active")]


def test_an_import_needs_a_header_naming_the_email_column(engine, service, tmp_path):
    path = a_csv(tmp_path, "ann@example.com,Ann,free\nbob@example.com,Bob,free\n")
    with pytest.raises(InputError) as raised:
        service.import_csv(path, list_slug="morning")
    assert "line 1" in raised.value.message and "'email'" in raised.value.message
    assert "email,name,tier" in (raised.value.hint or "")
    with pytest.raises(InputError, match="line 1"):
        service.import_csv(a_csv(tmp_path, "", name="empty.csv"), list_slug="morning")
    assert count(engine, Subscriber) == 0


def test_utf8_files_import_with_or_without_a_byte_order_mark(engine, service, tmp_path):
    plain = a_csv(tmp_path, "email,name,tier\nzoe@example.com,Zoë Ångström,free\n",
                  name="plain.csv")
    with_bom = a_csv(tmp_path, "email,name,tier\nzara@example.com,Zara Ørsted,client\n",
                     name="bom.csv", bom=True)
    for path in (plain, with_bom):
        report = service.import_csv(path, list_slug="morning")
        assert (report.added, report.errors, report.warnings) == (1, [], []), path.name
    assert rows_as_tuples(service, "morning") == [
        ("zara@example.com", "Zara Ørsted", "client", "active"),
        ("zoe@example.com", "Zoë Ångström", "free", "active")]


@pytest.mark.parametrize("delimiter", [";", "\t", ","])
def test_the_delimiter_is_read_off_the_header(engine, service, tmp_path, delimiter):
    # Excel in a European locale writes semicolons, and a BOM.
    path = a_csv(tmp_path, delimiter.join(["email", "name", "tier"]) + "\r\n"
                 + delimiter.join(["ann@example.com", "\"Lee, Ann\"", "client"]) + "\r\n",
                 bom=True)
    report = service.import_csv(path, list_slug="morning")
    assert (report.added, report.errors) == (1, [])
    assert report.warnings == ([] if delimiter == "," else
                               [f"read as {'semicolon' if delimiter == ';' else 'tab'}-separated"])
    assert rows_as_tuples(service, "morning") == [("ann@example.com", "Lee, Ann", "client",
                                                   "active")]


def test_a_dry_run_reports_what_an_import_would_do_and_stores_nothing(engine, service,
                                                                       tmp_path):
    service.add("ann@example.com", list_slug="morning", name="Ann")
    service.add("bob@example.com", list_slug="morning")
    service.unsubscribe("bob@example.com")
    path = a_csv(tmp_path, "email,name,tier\nann@example.com,Ann Lee,\nbob@example.com,,\n"
                           "cy@example.com,Cy,client\ncy@example.com,Cy,client\nbad,,\n")
    before = rows_as_tuples(service, "morning")
    dry = service.import_csv(path, list_slug="morning", dry_run=True)
    assert rows_as_tuples(service, "morning") == before
    real = service.import_csv(path, list_slug="morning")
    for report in (dry, real):
        assert (report.added, report.updated, report.unchanged, report.kept_unsubscribed) == (
            1, 1, 1, 1)
        assert [line for line, _message in report.errors] == [5, 6]
    again = service.import_csv(path, list_slug="morning")
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)


def test_duplicates_are_caught_across_batches(engine, service, tmp_path, monkeypatch):
    import subscribers.bulk_import
    monkeypatch.setattr(subscribers.bulk_import, "BATCH_SIZE", 3)
    lines = [f"r{n}@example.com,Reader {n},free" for n in range(10)] + ["R2@example.com,X,client"]
    report = service.import_csv(a_csv(tmp_path, "email,name,tier\n" + "\n".join(lines) + "\n"),
                                list_slug="morning")
    assert report.added == 10
    assert report.errors == [(12, "R2@example.com already appears on line 4; kept the first")]
    assert ("r2@example.com", "Reader 2", "free", "active") in rows_as_tuples(service, "morning")


def test_a_file_that_is_not_utf8_is_a_clear_error_and_imports_nothing(engine, service, tmp_path):
    text = "email,name,tier\nann@example.com,Ann,free\nzoe@example.com,Zoë,free\n"
    with pytest.raises(InputError) as raised:
        service.import_csv(a_csv(tmp_path, text, encoding="latin-1"), list_slug="morning")
    assert "line 3 is not UTF-8" in raised.value.message
    assert "UTF-8" in (raised.value.hint or "")
    with pytest.raises(InputError, match="line 1 is not UTF-8"):
        service.import_csv(a_csv(tmp_path, text, encoding="utf-16", name="utf16.csv"),
                           list_slug="morning")
    assert count(engine, Subscriber) == 0


def test_a_missing_file_or_an_unknown_list_is_an_error(engine, service, tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        service.import_csv(tmp_path / "nowhere.csv", list_slug="morning")
    with pytest.raises(NotFoundError):
        service.import_csv(a_csv(tmp_path, "email\nann@example.com\n"), list_slug="evening")
    with pytest.raises(NotFoundError):
        export_text(service, "evening")
    assert count(engine, Subscriber) == 0


def test_a_bad_address_on_line_812_of_1000_rows_is_reported_as_line_812(engine, service,
                                                                         tmp_path):
    lines = ["email,name,tier"] + [f"reader{n}@example.com,Reader {n},free"
                                   for n in range(2, 1002)]
    lines[812 - 1] = "reader812-at-example.com,Reader 812,free"
    report = service.import_csv(a_csv(tmp_path, "\n".join(lines) + "\n"), list_slug="morning")
    assert [line for line, _ in report.errors] == [812]
    assert "reader812-at-example.com" in report.errors[0][1]
    assert report.added == 999
    assert count(engine, Subscriber) == 999
    assert "reader812-at-example.com" not in subscribers_by_key(engine)


def test_every_bad_row_is_reported_by_its_line_and_the_good_rows_are_stored(engine, service,
                                                                            tmp_path):
    path = a_csv(tmp_path, "email,name,tier\n"                         # 1
                           "ann@example.com,Ann,free\n"                # 2
                           "not-an-address,Bob,free\n"                 # 3
                           "cy@example.com,Cy,gold\n"                  # 4
                           ",Nobody,free\n"                            # 5
                           "dee@example.com,Dee,free,extra\n"          # 6
                           "\n"                                        # 7 (blank: skipped)
                           "eve@example.com,\"Eve\x1bLee\",free\n"     # 8
                           ",,\n"                                      # 9 (empty: skipped)
                           "fay@example.com,Fay,client\n")             # 10
    report = service.import_csv(path, list_slug="morning")
    assert [line for line, _ in report.errors] == [3, 4, 5, 6, 8]
    messages = dict(report.errors)
    assert "not-an-address" in messages[3]
    assert "gold" in messages[4] and "free, client" in messages[4]
    assert "empty" in messages[5]
    assert "more fields" in messages[6]
    assert "control character" in messages[8]
    assert report.added == 2
    assert set(subscribers_by_key(engine)) == {"ann@example.com", "fay@example.com"}


def test_quoted_multi_line_fields_do_not_shift_line_numbers(engine, service, tmp_path):
    path = a_csv(tmp_path, "email,name,tier,notes\n"                                 # 1
                           "ann@example.com,Ann,free,\"met at the fair,\n"            # 2
                           "likes crosswords\n"                                      # 3
                           "and tide tables\"\n"                                     # 4
                           "bad-address,Bob,free,\n"                                 # 5
                           "cy@example.com,\"Cy\r\nBcc: all@example.com\",free,\n"   # 6, 7
                           "dee@example.com,Dee,gold,\"two\nlines\"\n"               # 8, 9
                           "also-bad,Eve,free,\n")                                   # 10
    report = service.import_csv(path, list_slug="morning")
    # A row is reported by the line it starts on, whatever its quoted fields span.
    assert [line for line, _ in report.errors] == [5, 6, 8, 10]
    assert set(subscribers_by_key(engine)) == {"ann@example.com"}


def test_an_unclosed_quote_is_reported_on_the_line_where_it_opens(engine, service, tmp_path):
    short = a_csv(tmp_path, "email,name,tier\n"
                            "ann@example.com,Ann,free\n"
                            "bob@example.com,\"Bob,free\n"
                            "cy@example.com,Cy,free\n", name="short.csv")
    report = service.import_csv(short, list_slug="morning")
    assert [line for line, _ in report.errors] == [3]
    # In a long file the quote swallows the rest into one field, longer than the csv module's
    # field limit: still reported where the quote opens, and the rows before it are stored.
    rows = [f"reader{n}@example.com,Reader {n},free" for n in range(5, 5000)]
    long = a_csv(tmp_path, "email,name,tier\ndee@example.com,Dee,free\n\n"
                           "eve@example.com,\"Eve,free\n" + "\n".join(rows) + "\n",
                 name="long.csv")
    report = service.import_csv(long, list_slug="morning")
    assert [line for line, _ in report.errors] == [4]
    assert "never closed" in report.errors[0][1]
    assert set(subscribers_by_key(engine)) == {"ann@example.com", "dee@example.com"}


def test_a_duplicate_address_in_a_file_is_reported_and_the_first_row_kept(engine, service,
                                                                          tmp_path):
    path = a_csv(tmp_path, "email,name,tier\n"
                           "ann@example.com,Ann,free\n"
                           "bob@example.com,Bob,free\n"
                           "ANN@example.com,Annie,client\n")
    report = service.import_csv(path, list_slug="morning")
    assert report.errors == [(4, "ANN@example.com already appears on line 2; kept the first")]
    assert report.added == 2
    ann = subscribers_by_key(engine)["ann@example.com"]
    assert (ann.name, ann.tier) == ("Ann", "free")
    # Rows are stored 1000 at a time; a duplicate in a later batch must still be caught.
    lines = ["email,name,tier"] + [f"reader{n}@example.com,Reader {n},free"
                                   for n in range(2, 1012)]
    lines[1005 - 1] = "READER3@example.com,Someone else,client"
    report = service.import_csv(a_csv(tmp_path, "\n".join(lines) + "\n", name="large.csv"),
                                list_slug="morning")
    assert report.errors == [
        (1005, "READER3@example.com already appears on line 3; kept the first")]
    reader3 = subscribers_by_key(engine)["reader3@example.com"]
    assert (reader3.name, reader3.tier) == ("Reader 3", "free")
    assert report.added == 1009 and report.updated == 0


def test_an_import_updates_existing_subscribers_and_counts_what_changed(engine, service, tmp_path):
    service.add("ann@example.com", list_slug="morning", name="Ann", tier="free")
    service.add("bob@example.com", list_slug="morning", name="Bob", tier="client")
    path = a_csv(tmp_path, "email,name,tier\n"
                           "ann@example.com,Ann Lee,client\n"
                           "BOB@example.com,Bob,\n"
                           "cy@example.com,Cy,\n")
    report = service.import_csv(path, list_slug="morning")
    assert (report.added, report.updated, report.unchanged) == (1, 1, 1)
    stored = subscribers_by_key(engine)
    assert (stored["ann@example.com"].name, stored["ann@example.com"].tier) == ("Ann Lee", "client")
    assert stored["bob@example.com"].tier == "client"  # a blank tier keeps the tier
    assert count(engine, Subscriber) == 3


def test_an_import_subscribes_existing_people_to_the_list(engine, service, tmp_path):
    service.lists.create("evening", "Evening Edition")
    service.add("ann@example.com", list_slug="evening", name="Ann")
    report = service.import_csv(a_csv(tmp_path, "email,name\nann@example.com,Ann\n"),
                                list_slug="morning")
    assert (report.added, report.updated, report.unchanged) == (0, 0, 1)
    assert status_of(engine, "ann@example.com", "morning") == "active"
    assert status_of(engine, "ann@example.com", "evening") == "active"


def test_an_import_never_re_activates_someone_who_unsubscribed(engine, service, tmp_path):
    service.add("ann@example.com", list_slug="morning")
    service.unsubscribe("ann@example.com", list_slug="morning")
    path = a_csv(tmp_path, "email,name\nann@example.com,Ann\nbob@example.com,Bob\n")
    report = service.import_csv(path, list_slug="morning")
    assert report.kept_unsubscribed == 1
    assert status_of(engine, "ann@example.com") == "unsubscribed"
    assert recipients(engine, service) == {"bob@example.com"}
    # Unless asked to:
    report = service.import_csv(path, list_slug="morning", resubscribe=True)
    assert report.kept_unsubscribed == 0
    assert status_of(engine, "ann@example.com") == "active"
    assert recipients(engine, service) == {"ann@example.com", "bob@example.com"}


def test_an_import_of_a_suppressed_address_does_not_make_it_a_recipient(engine, service,
                                                                        tmp_path):
    suppress(engine, "cy@example.com")
    service.import_csv(a_csv(tmp_path, "email\nCy@example.com\ndee@example.com\n"),
                       list_slug="morning")
    assert recipients(engine, service) == {"dee@example.com"}


# -- CSV export ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "=1+2", "+1 555 0100", "-2+3", "@SUM(A1)", "'=quoted", "''", "'", "O'Neill", "plain", "",
])
def test_defusing_a_csv_cell_is_undone_exactly_by_the_import(value):
    safe = csv_safe(value)
    assert not safe.startswith(("=", "+", "-", "@"))
    assert csv_unsafe(safe) == value


TRICKY_NAMES = {
    "ann@example.com": "=HYPERLINK(\"https://evil.example.com\",\"click\")",
    "bob@example.com": "+1 555 0100",
    "cy@example.com": "@SUM(A1:A2)",
    "dee@example.com": "-2+3",
    "eve@example.com": "'=already quoted",
    "fay@example.com": "Lee, \"Fay\"",
    "gus@example.com": "Zoë Ångström",
    "hal@example.com": "O'Neill",
    "ida@example.com": "",
    "=jo@example.com": "Jo",
    "-kim@example.com": "Kim",
}


def export_text(service: SubscriberService, slug: str = "morning") -> tuple[str, int]:
    out = io.StringIO()
    written = service.export_csv(slug, out)
    return out.getvalue(), written


def test_export_writes_the_import_columns_first(engine, service):
    with time_machine.travel(datetime(2026, 11, 24, 23, 59, tzinfo=UTC), tick=False):
        service.add("ann@example.com", list_slug="morning", name="Ann", tier="client")
    with time_machine.travel(datetime(2026, 11, 25, 0, 1, tzinfo=UTC), tick=False):
        service.add("bob@example.com", list_slug="morning", time_zone="America/New_York",
                    topics="government, AI")
    service.unsubscribe("bob@example.com")
    text, written = export_text(service)
    rows = list(csv.reader(io.StringIO(text)))
    assert written == 2
    assert rows == [["email", "name", "tier", "timezone", "status", "subscribed_at", "topics"],
                    ["ann@example.com", "Ann", "client", "", "active", "2026-11-24", ""],
                    ["bob@example.com", "", "free", "America/New_York", "unsubscribed",
                     "2026-11-25", "AI;government"]]


def test_export_defuses_formulas_and_re_imports_to_the_same_data(engine, service, tmp_path):
    for address, name in TRICKY_NAMES.items():
        service.add(address, list_slug="morning", name=name,
                    tier="client" if address < "d" else "free")
    text, written = export_text(service)
    assert written == len(TRICKY_NAMES)
    # A spreadsheet would run a cell starting with = + - @ as a formula.
    for row in list(csv.reader(io.StringIO(text)))[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@")), row
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8", newline="")
    # Into a fresh database state: remove everyone, then import what was exported (erased
    # people come back only when the import says so).
    for address in TRICKY_NAMES:
        service.remove(address)
    service.lists.create("copy", "Copy")
    report = service.import_csv(path, list_slug="copy", resubscribe=True)
    assert report.errors == []
    assert report.added == len(TRICKY_NAMES)
    assert {r.email: r.name for r in service.rows("copy")} == TRICKY_NAMES
    assert report.warnings == ["ignored unknown column(s): subscribed_at"]
    copied = list(csv.reader(io.StringIO(export_text(service, "copy")[0])))
    assert [row[:4] for row in copied] == [row[:4] for row in csv.reader(io.StringIO(text))]


def test_export_then_import_keeps_unsubscribed_people_unsubscribed(engine, service, tmp_path):
    service.add("ann@example.com", list_slug="morning", name="Ann")
    service.add("bob@example.com", list_slug="morning", name="Bob", tier="client")
    service.unsubscribe("bob@example.com", list_slug="morning")
    text, _ = export_text(service)
    path = tmp_path / "export.csv"
    path.write_text(text, encoding="utf-8", newline="")
    service.lists.create("copy", "Copy")
    report = service.import_csv(path, list_slug="copy")
    assert report.errors == []
    assert rows_as_tuples(service, "copy") == rows_as_tuples(service, "morning")
    assert recipients(engine, service, "copy") == {"ann@example.com"}
    assert report.unsubscribed == 1


def test_a_status_column_records_who_left_and_refuses_unknown_values(engine, service, tmp_path):
    service.add("cy@example.com", list_slug="morning")
    path = a_csv(tmp_path, "email,status\n"
                           "ann@example.com,active\n"
                           "bob@example.com,paused\n"
                           "cy@example.com,Unsubscribed\n")
    report = service.import_csv(path, list_slug="morning", resubscribe=True)
    assert [line for line, _ in report.errors] == [3]
    assert "paused" in report.errors[0][1]
    assert set(subscribers_by_key(engine)) == {"ann@example.com", "cy@example.com"}
    assert status_of(engine, "cy@example.com") == "unsubscribed"
    assert recipients(engine, service) == {"ann@example.com"}


# -- remove ----------------------------------------------------------------------------------

def test_remove_erases_the_subscriber_their_subscriptions_and_deliveries(engine, service):
    service.lists.create("evening", "Evening Edition")
    ann = service.add("ann@example.com", list_slug="morning").subscriber
    service.add("ann@example.com", list_slug="evening")
    bob = service.add("bob@example.com", list_slug="morning").subscriber
    with Session(engine) as session:
        edition = Edition(list_id=service.lists.get("morning").id, issue_date=date(2026, 11, 25),
                          cutoff=datetime(2026, 11, 25, 6, tzinfo=UTC))
        session.add(edition)
        session.flush()
        session.add_all([Delivery(edition_id=edition.id, subscriber_id=ann.id),
                         Delivery(edition_id=edition.id, subscriber_id=bob.id)])
        session.commit()

    service.remove("ANN@example.com")

    with Session(engine) as session:
        assert session.get(Subscriber, ann.id) is None
        assert session.scalars(select(Subscription.subscriber_id)).all() == [bob.id]
        assert session.scalars(select(Delivery.subscriber_id)).all() == [bob.id]
    with pytest.raises(NotFoundError):
        service.get_subscriber("ann@example.com")
    with pytest.raises(InputError, match="erased at their request"):
        service.add("ann@example.com", list_slug="morning")
    again = service.add("ann@example.com", list_slug="morning", resubscribe=True)
    assert again.created and not again.resubscribed and again.erased_before


def test_erasure_keeps_only_a_hash_and_imports_do_not_bring_the_person_back(engine, service,
                                                                            tmp_path):
    service.add("ann@example.com", list_slug="morning", name="Ann")
    service.add("bob@example.com", list_slug="morning")
    service.remove("Ann@Example.com")
    with Session(engine) as session:
        kept = session.scalars(select(Suppression.email_key)).all()
    assert len(kept) == 1 and kept[0].startswith("erased:sha256:")
    assert "ann" not in kept[0]
    path = tmp_path / "again.csv"
    path.write_text("email,name\nann@example.com,Ann\ncarl@example.com,Carl\n")

    report = service.import_csv(path, list_slug="morning")
    assert report.added == 1
    assert report.errors == [(2, "this address was erased at the person's request; not added "
                                 "(--resubscribe adds it)")]
    assert {row.email for row in service.rows("morning")} == {"bob@example.com",
                                                              "carl@example.com"}

    report = service.import_csv(path, list_slug="morning", resubscribe=True)
    assert report.errors == [] and report.added == 1
    assert "ann@example.com" in {row.email for row in service.rows("morning", status="active")}
    with Session(engine) as session:
        assert session.scalars(select(Suppression.email_key)).all() == []


def test_topics_are_stored_in_one_form_from_the_cli_and_the_csv_column(engine, service,
                                                                       tmp_path):
    service.add("ann@example.com", list_slug="morning", topics=" government, AI ,ai")
    assert service.get_subscriber("ann@example.com").topics == "AI;government"
    path = tmp_path / "topics.csv"
    path.write_text("email,topics\nann@example.com,Sport\nbob@example.com,Culture; AI\n"
                    "carl@example.com,\n")
    report = service.import_csv(path, list_slug="morning")
    assert report.errors == []
    assert {row.email: row.topics for row in service.rows("morning")} == {
        "ann@example.com": "Sport", "bob@example.com": "AI;Culture", "carl@example.com": ""}
    with pytest.raises(InputError, match="unknown status 'nope'"):
        service.rows(status="nope")


def test_removing_or_unsubscribing_an_unknown_address_is_not_found(engine, service):
    with pytest.raises(NotFoundError, match="nobody@example.com"):
        service.remove("nobody@example.com")
    with pytest.raises(NotFoundError, match="nobody@example.com"):
        service.unsubscribe("nobody@example.com")


def test_import_reads_time_zones_and_reports_unknown_ones_by_line(service, tmp_path):
    path = a_csv(tmp_path, "email,name,tier,timezone\n"
                           "ann@example.com,Ann,free,Europe/Paris\n"
                           "bob@example.com,Bob,free,Mars/Olympus\n"
                           "cy@example.com,Cy,free,\n")
    report = service.import_csv(path, list_slug="morning")
    assert report.added == 2
    assert report.errors == [(3, "'Mars/Olympus' is not a time zone")]
    zones = {row.email: row.time_zone for row in service.rows("morning")}
    assert zones == {"ann@example.com": "Europe/Paris", "cy@example.com": ""}


# -- the fast path of address checking --------------------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.from_regex(FAST_ADDRESS, fullmatch=True))
def test_the_fast_address_path_agrees_with_email_validator(text):
    from email_validator import EmailNotValidError, validate_email
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        with pytest.raises(InputError):
            normalise_email(text)
        return
    expected = result.ascii_email or result.normalized
    assert normalise_email(text) == (expected, expected.lower())


@pytest.mark.parametrize("text", ["a@localhost.test", "a..b@x.org", "a@x--y.org",
                                  "a@xn--bcher-kva.example", "a@x.123", "ü@x.org",
                                  f"{'a' * 65}@x.org", f"a@{'b' * 64}.org"])
def test_addresses_off_the_fast_path_still_get_email_validators_verdict(text):
    from email_validator import EmailNotValidError, validate_email
    try:
        result = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        with pytest.raises(InputError):
            normalise_email(text)
        return
    expected = result.ascii_email or result.normalized
    assert normalise_email(text) == (expected, expected.lower())


def test_a_listing_reads_in_internal_pages_without_losing_or_repeating_anyone(
        engine, service, monkeypatch):
    import subscribers.listing
    monkeypatch.setattr(subscribers.listing, "PAGE_SIZE", 3)
    for n in range(10):
        service.add(f"r{n}@example.com", list_slug="morning", tier="client" if n % 2 else "free")
    service.lists.create("evening", "Evening")
    service.add("r4@example.com", list_slug="evening")
    every = list(service.page())
    assert [(row.email, row.list_slug) for row in every] == [
        (f"r{n}@example.com", "morning") for n in range(5)] + [("r4@example.com", "evening")] \
        + [(f"r{n}@example.com", "morning") for n in range(5, 10)]
    page = service.page(limit=7, tier="client")
    assert [row.email for row in page] == [f"r{n}@example.com" for n in (1, 3, 5, 7, 9)]
    assert page.next_after is None
    page = service.page("morning", limit=4)
    assert [row.email for row in page] == [f"r{n}@example.com" for n in range(4)]
    assert page.next_after == "r3@example.com"
    rest = service.page("morning", after=page.next_after)
    assert [row.email for row in rest] == [f"r{n}@example.com" for n in range(4, 10)]


def test_a_listing_being_printed_holds_no_lock(engine, service, monkeypatch):
    import subscribers.listing
    monkeypatch.setattr(subscribers.listing, "PAGE_SIZE", 2)
    for n in range(5):
        service.add(f"r{n}@example.com", list_slug="morning")
    rows = iter(service.page())
    assert next(rows).email == "r0@example.com"
    # Halfway through the listing, a writer gets in at once (on SQLite: no BEGIN IMMEDIATE
    # held by the reader), and keyset paging carries on after it.
    service.add("r9@example.com", list_slug="morning")
    assert [row.email for row in rows] == [f"r{n}@example.com" for n in (1, 2, 3, 4, 9)]
