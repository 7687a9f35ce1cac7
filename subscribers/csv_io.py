"""Subscriber CSV files: read an import row by row, write an export.

An import is checked whole for UTF-8 before any row is read, so that a bad file stores nothing;
after that each bad row is reported by the line it starts on and the good ones are handed on
(an address that appears twice is caught by the importer, subscribers.bulk_import, which keeps
the first). A byte order mark is skipped. The delimiter is read off the header: whichever of
``,`` ``;`` (Excel in most European locales) and tab splits it into a row naming an ``email``
column. What the export writes, the import reads back unchanged: cells a spreadsheet would run
as a formula are quoted on the way out and unquoted on the way in.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from digest.errors import InputError
from digest.schedule import parse_zone
from subscribers.models import ACTIVE, PENDING, UNSUBSCRIBED
from subscribers.topics import canonical_topics
from subscribers.validation import check_tier, clean_name, normalise_email

# status and subscribed_at are what the export adds; status is read, subscribed_at ignored.
# topics: the categories the reader follows, ";" between them (empty: every post).
IMPORT_COLUMNS = ("email", "name", "tier", "timezone", "status", "topics")
EXPORT_COLUMNS = ("email", "name", "tier", "timezone", "status", "subscribed_at", "topics")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list; "-2+3" is a formula too
# A value that itself starts with the quote is quoted once more, so that the import, which
# takes one quote off, gives back exactly what was exported ("'=x" must not come back "=x").
_QUOTED_STARTS = (*FORMULA_STARTS, "'")
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_unsubscribed: int = 0
    # Rows whose status column said "unsubscribed": stored (or changed to) unsubscribed.
    unsubscribed: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Rows written to the database: batches commit whole, so this is a sum of whole batches.
    stored: int = 0
    # Set when the import was stopped before the end: the first line not stored. Importing
    # again from there (``from_line``) finishes the file as if it had never stopped.
    resume_line: int | None = None


@dataclass(slots=True)          # not frozen: a frozen __init__ costs a microsecond a row
class ImportRow:
    """One checked row; None means the file left that value alone."""

    line: int
    address: str
    key: str
    name: str | None
    tier: str | None
    time_zone: str | None
    unsubscribed: bool
    topics: str | None = None


def read_import(path: Path, report: ImportReport, *, tiers: Sequence[str],
                check_deliverability: bool,
                position: Callable[[int], None] | None = None) -> Iterator[ImportRow]:
    """The file's good rows; bad ones go to ``report.errors`` by line. ``position`` is told
    how many bytes have been read, every thousand rows (for a progress bar)."""
    known_tiers = set(tiers)
    rows = _read_rows(path, report, position)
    header = next(rows)[1]
    # A column the file lacks reads as None (the import leaves that value alone): it points
    # at a None cell padded onto the end of each row, as do the cells of a short row.
    width = len(header)
    email_at, name_at, tier_at, zone_at, status_at, topics_at = (
        header.index(column) if column in header else width for column in IMPORT_COLUMNS)

    for line, values in rows:
        values.extend([None] * (width + 1 - len(values)))    # type: ignore[list-item]
        try:
            address, key = normalise_email(csv_unsafe(values[email_at] or ""),
                                           check_deliverability=check_deliverability)
            raw_name = values[name_at]
            name = clean_name(csv_unsafe(raw_name)) if raw_name is not None else None
            raw_tier = (values[tier_at] or "").strip()
            tier = (raw_tier if raw_tier in known_tiers else check_tier(raw_tier, list(tiers))) \
                if raw_tier else None
            raw_zone = (values[zone_at] or "").strip()
            zone = parse_zone(raw_zone).key if raw_zone else None
            raw_topics = values[topics_at]
            topics = canonical_topics(csv_unsafe(raw_topics)) if raw_topics is not None else None
            status = (values[status_at] or "").strip().lower()
            if status == PENDING:
                raise InputError(f"{address} never confirmed their sign-up (status pending); "
                                 "not imported, so that nobody is mailed without consent")
            if status not in ("", ACTIVE, UNSUBSCRIBED):
                raise InputError(f"unknown status {status!r}; the status column may say "
                                 f"{ACTIVE} or {UNSUBSCRIBED}")
        except InputError as exc:
            report.errors.append((line, exc.message))
            continue
        yield ImportRow(line, address, key, name, tier, zone, status == UNSUBSCRIBED, topics)


def write_export(out: IO[str], rows: Iterable[Sequence[str]]) -> int:
    """Write rows of EXPORT_COLUMNS under a header; return how many."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for email, name, *rest in rows:
        writer.writerow([csv_safe(email), csv_safe(name), *rest[:-1], csv_safe(rest[-1])])
        count += 1
    return count


def csv_safe(value: str) -> str:
    # A cell starting with = + - @ runs as a formula in a spreadsheet (CSV injection); the quote
    # that defuses it is taken off again by the import (csv_unsafe). An address may start
    # with = + - too, so the email column is defused as well.
    return "'" + value if value.startswith(_QUOTED_STARTS) else value


def csv_unsafe(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_QUOTED_STARTS) else value


def _read_rows(path: Path, report: ImportReport, position: Callable[[int], None] | None
               ) -> Iterator[tuple[int, list[str]]]:
    """The header (line 1), then each non-empty row's cells with the line it starts on (a
    quoted field may span lines)."""
    _check_utf8(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        first = handle.readline()
        delimiter, header = sniff_header(first)
        if "email" not in header:
            raise InputError(
                f"{path}: line 1 must be a header naming an 'email' column "
                f"(found: {first.strip()[:200] or 'nothing'})",
                hint="the columns are email,name,tier, separated by commas, semicolons or "
                     "tabs (one kind in a file)")
        unknown = [h for h in header if h not in IMPORT_COLUMNS]
        if unknown:
            report.warnings.append(f"ignored unknown column(s): {', '.join(unknown)}")
        if delimiter != ",":
            report.warnings.append(f"read as {DELIMITERS[delimiter]}-separated")
        yield 1, header
        # csv.reader, not DictReader: its line_num is the line a row *ends* on, and
        # DictReader skips blank lines unseen, so the start of a row could not be known.
        reader = csv.reader(handle, delimiter=delimiter)
        end = 1
        while True:
            start = end + 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # Usually a quote never closed, which swallows the rest of the file: the
                # reader cannot find the next row, so stop; the rows before are stored.
                report.errors.append((start, f"{exc} (a quote that is never closed?); "
                                             "the rest of the file was not read"))
                return
            end = reader.line_num + 1
            if position is not None and end % 1000 == 0:
                position(handle.buffer.tell())
            if len(values) > len(header):
                report.errors.append((start, "more fields than the header has columns"))
                continue
            if not "".join(values).strip():
                continue
            yield start, values


def sniff_header(line: str) -> tuple[str, list[str]]:
    """The delimiter and the column names of a header line.

    Not csv.Sniffer: it guesses from character frequencies and fails on a one-column file;
    the header is known to name an email column, which settles it."""
    candidates = []
    for delimiter in DELIMITERS:
        try:
            header = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:
            continue
        header = [h.strip().lower() for h in header]
        candidates.append(("email" in header, len(header), delimiter, header))
    # A header naming the email column wins; among those, the one splitting it most.
    _has_email, _count, delimiter, header = max(
        candidates, key=lambda c: (c[0], c[1], c[2] == ","), default=(False, 0, ",", []))
    return delimiter, header


def _check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 before any row is stored, naming the first bad line.

    Checked up front: a decoding error found halfway would leave part of the file imported.
    """
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path}: line {number} is not UTF-8 text ({exc.reason})",
                                     hint="save the file as UTF-8 CSV (with or without BOM) "
                                          "and import again; nothing was imported") from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
