"""The CSV importer, property-based (Hypothesis): any file is stored or refused row by row.

For any rows a spreadsheet could hold — names with quotes, commas, line breaks, formulas,
any Unicode, blank tiers, unknown tiers — each row is either stored exactly as
:func:`subscribers.validation.clean_name` promises, or reported on the line it starts on,
never both, never neither; and what the export writes, the import reads back unchanged.
"""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from conftest import make_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.app import App
from digest.errors import InputError
from subscribers.csv_io import csv_unsafe
from subscribers.validation import clean_name

NAMES = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
TIERS = st.sampled_from(["", "free", "client", "gold"])          # "gold" is not a tier
ROWS = st.lists(st.tuples(NAMES, TIERS), max_size=12)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
_examples = itertools.count()


@pytest.fixture
def app(tmp_path, sqlite_url) -> App:
    return App(make_config(tmp_path, sqlite_url))


def a_file(tmp_path, rows: list[tuple[str, str, str]]) -> tuple[object, list[int]]:
    """The CSV file of (email, name, tier) rows and the line each row starts on."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)             # as a spreadsheet writes it: CR LF, CR and LF quoted
    writer.writerow(["email", "name", "tier"])
    starts = []
    for row in rows:
        starts.append(buffer.getvalue().count("\n") + buffer.getvalue().count("\r")
                      - buffer.getvalue().count("\r\n") + 1)
        writer.writerow(row)
    path = tmp_path / f"people-{next(_examples)}.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return path, starts


def expected_name(raw: str) -> str | None:
    try:
        return clean_name(csv_unsafe(raw))
    except InputError:
        return None


@SETTINGS
@given(rows=ROWS)
def test_each_row_is_stored_exactly_or_reported_on_its_line(app, tmp_path, rows):
    n = next(_examples)
    slug = f"list-{n}"
    app.lists.create(slug, slug)
    written = [(f"reader{i}@x{n}.example.org", name, tier) for i, (name, tier) in enumerate(rows)]
    path, starts = a_file(tmp_path, written)
    report = app.subscribers.import_csv(path, list_slug=slug)

    refused_lines = [line for line, _message in report.errors]
    assert len(refused_lines) == len(set(refused_lines))          # one report per row at most
    stored = {row.email: row for row in app.subscribers.rows(slug)}
    for (address, name, tier), line in zip(written, starts, strict=True):
        good = expected_name(name) is not None and tier in ("", "free", "client")
        assert (address in stored) == good, (address, name, tier, report.errors)
        assert (line in refused_lines) == (not good), (line, report.errors)
        if good:
            assert stored[address].name == expected_name(name)
            assert stored[address].tier == (tier or "free")
    assert report.added == len(stored) and len(report.errors) == len(rows) - len(stored)


@SETTINGS
@given(rows=ROWS)
def test_what_the_export_writes_the_import_reads_back_unchanged(app, tmp_path, rows):
    n = next(_examples)
    slug, copy = f"from-{n}", f"to-{n}"
    app.lists.create(slug, slug)
    app.lists.create(copy, copy)
    good = [(f"reader{i}@y{n}.example.org", name, tier or "free")
            for i, (name, tier) in enumerate(rows)
            if expected_name(name) is not None and tier != "gold"]
    path, _starts = a_file(tmp_path, good)
    app.subscribers.import_csv(path, list_slug=slug)
    exported = io.StringIO()
    app.subscribers.export_csv(slug, exported)
    again = tmp_path / f"export-{n}.csv"
    again.write_text(exported.getvalue(), encoding="utf-8", newline="")
    report = app.subscribers.import_csv(again, list_slug=copy)
    assert (report.added, report.updated, report.errors) == (0, 0, [])
    assert report.unchanged == len(good)
    assert ({(r.email, r.name, r.tier) for r in app.subscribers.rows(copy)}
            == {(r.email, r.name, r.tier) for r in app.subscribers.rows(slug)})
