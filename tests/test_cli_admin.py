"""Admin commands run in-process through the real entry point: suppressions, profiles."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from digest.db import make_engine
from digest.models import Delivery, Edition
from subscribers.suppressions import AddressEvent, EventKind, Suppressions
from support.builders import an_entry, an_rss_feed


def config_file(tmp_path: Path, database_url: str) -> Path:
    path = tmp_path / "digest.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n[web]\nsecret_key = "s"\n'
                    f'[delivery]\noutbox = "{tmp_path / "outbox"}"\n', encoding="utf-8")
    return path


def test_suppressions_can_be_listed_added_and_lifted(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    assert digest(config, "lists", "create", "morning", "--name", "Morning").exit_code == 0
    assert digest(config, "subscribers", "add", "Ana@Example.org", "--list", "morning"
                  ).exit_code == 0
    added = digest(config, "suppressions", "add", "ana@example.org", "--reason", "erased")
    assert added.exit_code == 0 and "Suppressed" in added.output
    assert "already suppressed" in digest(config, "suppressions", "add",
                                          "ANA@example.org").output
    listing = digest(config, "suppressions", "list")
    assert "ana@example.org" in listing.output and "erased" in listing.output
    warned = digest(config, "subscribers", "add", "ana@example.org", "--list", "morning")
    assert "is suppressed (erased)" in warned.output
    assert digest(config, "suppressions", "remove", "ana@example.org").exit_code == 0
    missing = digest(config, "suppressions", "remove", "ana@example.org")
    assert missing.exit_code == 4 and "is not suppressed" in missing.output


def test_show_gives_lists_suppression_and_bounce_history(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    digest(config, "lists", "create", "morning", "--name", "Morning")
    digest(config, "subscribers", "add", "jo@example.org", "--list", "morning", "--name", "Jo",
           "--tier", "client")
    engine = make_engine(sqlite_url)
    Suppressions(engine).record([
        AddressEvent("jo@example.org", EventKind.SOFT_BOUNCE, "postmark", "mailbox full"),
        AddressEvent("jo@example.org", EventKind.HARD_BOUNCE, "postmark", "550 no such user",
                     event_id="e1")])
    engine.dispose()
    shown = digest(config, "subscribers", "show", "JO@example.org")
    assert shown.exit_code == 0, shown.output
    assert "tier: client" in shown.output and "list morning: active" in shown.output
    assert "SUPPRESSED" in shown.output and "hard-bounce" in shown.output
    assert "mailbox full" in shown.output and "550 no such user" in shown.output
    unknown = digest(config, "subscribers", "show", "nobody@example.org")
    assert unknown.exit_code == 4 and "no subscriber" in unknown.output


# -- --json: one document on stdout, errors on stderr -----------------------------------------

def people(config: Path, digest, *rows: tuple[str, str, str]) -> None:
    """Subscribe (email, list, tier) rows, creating the lists on the way."""
    for email, slug, tier in rows:
        digest(config, "lists", "create", slug, "--name", slug.title(), "--exist-ok")
        result = digest(config, "subscribers", "add", email, "--list", slug, "--tier", tier)
        assert result.exit_code == 0, result.output


def as_json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_admin_listing_has_a_json_document(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    people(config, digest, ("ann@example.org", "morning", "free"),
           ("bo@example.org", "morning", "client"), ("bo@example.org", "evening", "client"))
    digest(config, "lists", "update", "morning", "--time", "07:00", "--timezone",
           "Europe/London")
    digest(config, "subscribers", "unsubscribe", "ann@example.org", "--list", "morning")
    digest(config, "suppressions", "add", "bo@example.org", "--reason", "complaint")

    lists = as_json(digest(config, "lists", "list", "--json"))["lists"]
    assert [entry["slug"] for entry in lists] == ["evening", "morning"]
    morning = lists[1]
    assert morning["schedule"] == {"time": "07:00", "timezone": "Europe/London",
                                   "days": "daily", "lead_minutes": 0,
                                   "per_subscriber_time": False, "alert_on_empty": False}
    assert morning["subscribers"] == {"active": 1, "unsubscribed": 1}
    assert datetime.fromisoformat(morning["next_run_at"]).tzinfo is not None
    assert lists[0]["next_run_at"] is None

    shown = as_json(digest(config, "lists", "show", "morning", "--json"))
    assert shown["subscribers"] == {"active": 1, "unsubscribed": 1, "suppressed": 1}
    assert shown["editions"] == {"count": 0, "last_issue_date": None}

    person = as_json(digest(config, "subscribers", "show", "BO@example.org", "--json"))
    assert person["email"] == "bo@example.org" and person["tier"] == "client"
    assert [(entry["list"], entry["status"]) for entry in person["lists"]] == [
        ("evening", "active"), ("morning", "active")]
    assert person["suppression"]["reason"] == "complaint"
    assert person["deliveries"] == []

    suppressed = as_json(digest(config, "suppressions", "list", "--json"))["suppressions"]
    assert [(row["email"], row["reason"]) for row in suppressed] == [
        ("bo@example.org", "complaint")]

    status = as_json(digest(config, "status", "--json"))
    assert status["editions"] == [] and status["sources"] == []
    assert {row["slug"]: row["last_run"] for row in status["lists"]} == {
        "evening": None, "morning": None}

    missing = digest(config, "lists", "show", "nope", "--json")
    assert missing.exit_code == 4 and missing.stdout == "" and "no list 'nope'" in missing.stderr


def test_subscribers_list_filters_and_pages_by_address(tmp_path, database_url, digest):
    config = config_file(tmp_path, database_url)
    people(config, digest, *((f"reader{n:02}@example.org", "morning",
                              "client" if n % 3 == 0 else "free") for n in range(12)),
           ("reader00@example.org", "evening", "client"), ("zed@example.org", "evening", "free"))
    digest(config, "subscribers", "unsubscribe", "reader01@example.org", "--list", "morning")
    digest(config, "suppressions", "add", "reader02@example.org")

    every = as_json(digest(config, "subscribers", "list", "--json"))
    assert len(every["subscribers"]) == 14 and every["next_after"] is None
    assert [row["email"] for row in every["subscribers"][:2]] == ["reader00@example.org"] * 2

    pages, after = [], None
    while True:
        args = ["subscribers", "list", "--list", "morning", "--limit", "5", "--json"]
        page = as_json(digest(config, *args, *(["--after", after] if after else [])))
        pages.append([row["email"] for row in page["subscribers"]])
        after = page["next_after"]
        if after is None:
            break
    assert [len(page) for page in pages] == [5, 5, 2]
    assert sum(pages, []) == [f"reader{n:02}@example.org" for n in range(12)]

    # --limit counts people, so a page never splits one address's lists: reader00 is on two.
    first = as_json(digest(config, "subscribers", "list", "--limit", "1", "--json"))
    assert [row["list"] for row in first["subscribers"]] == ["morning", "evening"]
    assert first["next_after"] == "reader00@example.org"

    def emails(*filters: str) -> list[str]:
        found = as_json(digest(config, "subscribers", "list", "--json", *filters))
        return [row["email"] for row in found["subscribers"]]

    assert emails("--list", "morning", "--tier", "client") == [
        "reader00@example.org", "reader03@example.org", "reader06@example.org",
        "reader09@example.org"]
    assert emails("--status", "unsubscribed") == ["reader01@example.org"]
    assert emails("--status", "suppressed") == ["reader02@example.org"]
    assert "reader02@example.org" not in emails("--status", "active")
    assert emails("--search", "ZED") == ["zed@example.org"]
    assert emails("--search", "%") == []                       # a literal, not a wildcard
    assert emails("--status", "pending") == []

    text = digest(config, "subscribers", "list", "--list", "morning", "--limit", "2")
    assert text.stdout.splitlines()[0].split() == ["email", "name", "tier", "list", "status",
                                                   "since", "topics"]
    assert len(text.stdout.splitlines()) == 3 and "more: --after reader01@example.org" \
        in text.stderr
    bad = digest(config, "subscribers", "list", "--status", "gone")
    assert bad.exit_code == 2 and "unknown status 'gone'" in bad.stderr
    bad_tier = digest(config, "subscribers", "list", "--tier", "gold")
    assert bad_tier.exit_code == 2 and bad_tier.stdout == ""


def test_update_changes_a_subscriber_and_never_their_subscriptions(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    people(config, digest, ("ann@example.org", "morning", "free"),
           ("ann@example.org", "evening", "free"))
    digest(config, "subscribers", "unsubscribe", "ann@example.org", "--list", "evening")
    changed = digest(config, "subscribers", "update", "ANN@example.org", "--tier", "client",
                     "--name", "Ann Lee", "--timezone", "Europe/Paris")
    assert changed.exit_code == 0, changed.output
    person = as_json(digest(config, "subscribers", "show", "ann@example.org", "--json"))
    assert (person["name"], person["tier"], person["timezone"]) == ("Ann Lee", "client",
                                                                   "Europe/Paris")
    assert [(entry["list"], entry["status"]) for entry in person["lists"]] == [
        ("evening", "unsubscribed"), ("morning", "active")]
    assert digest(config, "subscribers", "update", "ann@example.org", "--tier", "gold"
                  ).exit_code == 2
    assert digest(config, "subscribers", "update", "ann@example.org").exit_code == 2
    assert digest(config, "subscribers", "update", "who@example.org", "--name", "X"
                  ).exit_code == 4


def test_add_refuses_to_resubscribe_someone_who_left(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    people(config, digest, ("ann@example.org", "morning", "free"))
    digest(config, "subscribers", "unsubscribe", "ann@example.org")
    refused = digest(config, "subscribers", "add", "ann@example.org", "--list", "morning",
                     "--tier", "client")
    assert refused.exit_code == 2 and "hint: pass --resubscribe" in refused.stderr
    person = as_json(digest(config, "subscribers", "show", "ann@example.org", "--json"))
    assert person["tier"] == "free" and person["lists"][0]["status"] == "unsubscribed"
    again = digest(config, "subscribers", "add", "ann@example.org", "--list", "morning",
                   "--resubscribe")
    assert again.exit_code == 0 and "subscribed again" in again.stdout


def test_lists_rename_and_delete(tmp_path, database_url, digest):
    config = config_file(tmp_path, database_url)
    people(config, digest, ("ann@example.org", "morning", "free"),
           ("ann@example.org", "evening", "free"))
    digest(config, "lists", "create", "empty", "--name", "Empty")
    assert digest(config, "lists", "rename", "morning", "evening").exit_code == 2
    assert digest(config, "lists", "rename", "morning", "Bad Slug!").exit_code == 2
    renamed = digest(config, "lists", "rename", "morning", "daybreak")
    assert renamed.exit_code == 0, renamed.output
    assert as_json(digest(config, "lists", "show", "daybreak", "--json")
                   )["subscribers"]["active"] == 1

    # No terminal to ask on, and no --yes: nothing happens.
    unasked = digest(config, "lists", "delete", "empty")
    assert unasked.exit_code == 2 and "pass --yes" in unasked.stderr
    refused = digest(config, "lists", "delete", "daybreak", "--yes")
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert digest(config, "lists", "delete", "empty", "--yes").exit_code == 0
    forced = digest(config, "lists", "delete", "daybreak", "--yes", "--force")
    assert forced.exit_code == 0 and "1 subscription(s)" in forced.stdout
    left = as_json(digest(config, "lists", "list", "--json"))["lists"]
    assert [entry["slug"] for entry in left] == ["evening"]
    person = as_json(digest(config, "subscribers", "show", "ann@example.org", "--json"))
    assert [entry["list"] for entry in person["lists"]] == ["evening"]
    assert digest(config, "lists", "delete", "nope", "--yes").exit_code == 4


def test_delete_with_force_takes_editions_and_deliveries_along(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    people(config, digest, ("ann@example.org", "morning", "free"))
    feed = tmp_path / "feed.xml"
    feed.write_bytes(an_rss_feed(an_entry()))
    config.write_text(config.read_text() + f'[[sources]]\nname = "news"\nurl = "{feed}"\n')
    sent = digest(config, "run", "--list", "morning")
    assert sent.exit_code == 0, sent.output
    refused = digest(config, "lists", "delete", "morning", "--yes")
    assert refused.exit_code == 2 and "1 edition(s)" in refused.stderr
    assert digest(config, "lists", "delete", "morning", "--yes", "--force").exit_code == 0
    engine = make_engine(sqlite_url)
    with Session(engine) as session:
        assert session.exec(select(Edition)).all() == []
        assert session.exec(select(Delivery)).all() == []
    engine.dispose()


def test_export_of_an_unknown_list_writes_nothing_to_stdout(tmp_path, sqlite_url, digest):
    config = config_file(tmp_path, sqlite_url)
    people(config, digest, ("ann@example.org", "morning", "free"))
    failed = digest(config, "subscribers", "export", "--list", "nope")
    assert failed.exit_code == 4 and failed.stdout == "" and "no list 'nope'" in failed.stderr
    exported = digest(config, "subscribers", "export", "--list", "morning")
    assert exported.stdout.splitlines()[1].startswith("ann@example.org,,free,")


def test_import_dry_run_and_a_progress_bar_on_a_terminal(tmp_path, sqlite_url, digest,
                                                          monkeypatch):
    import io

    from rich.console import Console

    import digest.cli.subscribers as subscribers_cli

    config = config_file(tmp_path, sqlite_url)
    digest(config, "lists", "create", "morning", "--name", "Morning")
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email;name;tier\n" + "".join(f"r{n}@example.org;R {n};free\n"
                                                       for n in range(3000)), encoding="utf-8")
    dry = digest(config, "subscribers", "import", str(csv_file), "--list", "morning",
                 "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "Dry run, nothing stored: would import into morning: 3000 added" in dry.stdout
    assert "read as semicolon-separated" in dry.stderr
    assert as_json(digest(config, "lists", "show", "morning", "--json")
                   )["subscribers"]["active"] == 0

    terminal = io.StringIO()
    monkeypatch.setattr(subscribers_cli, "err", Console(file=terminal, force_terminal=True,
                                                        width=100))
    real = digest(config, "subscribers", "import", str(csv_file), "--list", "morning")
    assert real.exit_code == 0 and "3000 added" in real.stdout
    assert "importing" in terminal.getvalue()
    assert as_json(digest(config, "lists", "show", "morning", "--json")
                   )["subscribers"]["active"] == 3000


def test_delete_asks_on_a_terminal_and_a_no_keeps_the_list(tmp_path, sqlite_url, digest,
                                                           monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    config = config_file(tmp_path, sqlite_url)
    people(config, digest, ("ann@example.org", "morning", "free"))
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    kept = digest(config, "lists", "delete", "morning", "--force")
    assert kept.exit_code == 2 and "Delete list morning with 1 subscription(s)" in kept.output
    assert "nothing was deleted" in kept.stderr
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert digest(config, "lists", "delete", "morning", "--force").exit_code == 0
    assert as_json(digest(config, "lists", "list", "--json")) == {"lists": []}
