"""Text from outside prints as written: never read as Rich markup or emoji codes.

A subscriber named ``Zed [/bold] Smith`` once crashed `subscribers list` (MarkupError), a feed
title ``Council budget [/] explained`` crashed `send --dry-run`, and ``Jane [sales team]`` showed
as ``Jane``. The project's own help texts lost ``[tiers]`` and ``[default: today]`` the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
from support.builders import an_entry, an_rss_feed

from digest.cli.main import app as cli_app

HOSTILE_NAMES = ["Zed [/bold] Smith", "Jane [sales team]", "[red]Red[/red] Rover",
                 "Emoji :thumbs_up: Ed", "Bracket [ Bea", "[link=https://evil.example]Al[/link]"]


def config_file(tmp_path: Path, database_url: str, *, feed: Path | None = None) -> Path:
    path = tmp_path / "digest.toml"
    sources = f'[[sources]]\nname = "news [main]"\nurl = "{feed}"\n' if feed else ""
    path.write_text(f'[database]\nurl = "{database_url}"\n[web]\nsecret_key = "s"\n'
                    f'[delivery]\noutbox = "{tmp_path / "outbox"}"\n{sources}', encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path, sqlite_url, digest) -> Path:
    path = config_file(tmp_path, sqlite_url)
    assert digest(path, "lists", "create", "morning", "--name", "Morning [AM]").exit_code == 0
    return path


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_subscriber_name_prints_as_written_in_list_and_show(config, digest, name):
    added = digest(config, "subscribers", "add", "zed@example.org", "--list", "morning",
                   "--name", name)
    assert added.exit_code == 0, added.output
    listing = digest(config, "subscribers", "list", "--list", "morning")
    assert listing.exit_code == 0, listing.output
    assert name in listing.output and "Morning [AM]" in digest(config, "lists", "list").output
    shown = digest(config, "subscribers", "show", "zed@example.org")
    assert shown.exit_code == 0, shown.output
    assert name in shown.output


def test_csv_cells_print_as_written(config, digest, tmp_path):
    csv = tmp_path / "people.csv"
    csv.write_text("email,name,tier\nann@example.org,Ann [/] Lee,free\n"
                   "[/bold]@example.org,Bad [red]Row,free\n", encoding="utf-8")
    result = digest(config, "subscribers", "import", str(csv), "--list", "morning")
    assert result.exit_code == 2, result.output          # one bad row, reported by line
    assert "[/bold]@example.org" in result.output
    assert "Ann [/] Lee" in digest(config, "subscribers", "list", "--list", "morning").output


def test_a_feed_title_prints_as_written_in_a_dry_run(tmp_path, sqlite_url, digest):
    feed = tmp_path / "feed.xml"
    feed.write_bytes(an_rss_feed(an_entry(title="Council budget [/] explained"),
                                 an_entry(title="[bold]Loud[/bold] :fire: news")))
    config = config_file(tmp_path, sqlite_url, feed=feed)
    assert digest(config, "lists", "create", "morning", "--name", "Morning").exit_code == 0
    digest(config, "subscribers", "add", "ana@example.org", "--list", "morning")
    collected = digest(config, "collect")
    assert collected.exit_code == 0 and "news [main]: 2 new" in collected.output
    result = digest(config, "send", "--list", "morning", "--dry-run", "--date", "2026-11-25")
    assert result.exit_code == 0, result.output
    assert "Council budget [/] explained" in result.output
    assert "[bold]Loud[/bold] :fire: news" in result.output


def _commands(command, path: tuple[str, ...] = ()):
    yield path, command
    if hasattr(command, "commands"):          # a group (Typer may bring its own click)
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_bracketed_word_in_the_help_texts_is_shown(tmp_path, digest):
    checked = 0
    for path, command in _commands(typer.main.get_command(cli_app)):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        words = {w for text in texts for w in re.findall(r"\[[^\]\[]+\]", text)}
        if not words:
            continue
        result = digest(tmp_path / "unused.toml", *path, "--help")
        shown = " ".join(result.output.split())           # help is wrapped to the terminal
        for word in words:
            assert " ".join(word.split()) in shown, f"`digest {' '.join(path)} --help` lost {word}"
            checked += 1
    assert checked >= 3          # [tiers], [default: today], [default: ./digest.toml], …


def test_every_typer_app_keeps_its_help_texts_as_written():
    groups = [command for _path, command in _commands(typer.main.get_command(cli_app))
              if hasattr(command, "commands")]
    assert len(groups) >= 4
    assert all(group.rich_markup_mode is None for group in groups)
