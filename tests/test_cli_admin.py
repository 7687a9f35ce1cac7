"""Admin commands run in-process through the real entry point: suppressions, profiles."""

from __future__ import annotations

from pathlib import Path

from subscribers.suppressions import AddressEvent, EventKind, Suppressions


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
    from digest.db import make_engine
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
