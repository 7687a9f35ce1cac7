"""Every feed-normaliser case in tests/data/feeds: the input, read as production reads it,
gives exactly the entries (and problems) of its expected file. A new case is two files, no code
(tests/data/feeds/README.md)."""

from __future__ import annotations

import json

import pytest

from support.feed_cases import expected_path, inputs, normalised


@pytest.mark.parametrize("feed", inputs(), ids=lambda path: path.name)
def test_a_feed_reads_as_its_expected_file_says(feed):
    expected = expected_path(feed)
    assert expected.is_file(), f"no {expected.name}: python -m tests.regen_feed_case {feed}"
    assert normalised(feed) == json.loads(expected.read_text(encoding="utf-8"))


def test_every_expected_file_has_its_input():
    names = {expected_path(feed).name for feed in inputs()}
    orphans = [p.name for p in expected_path(inputs()[0]).parent.glob("*.expected.json")
               if p.name not in names]
    assert orphans == []
