"""Collect: fetch every configured source and store its entries as Post rows.

Idempotent: the same (source, guid) is the same row; it is rewritten only when its content
changed. One broken source is recorded on its SourceState and never stops the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import SourceError
from digest.models import Post, SourceState
from digest.sources.base import Entry, Source, Validators
from digest.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass
class SourceReport:
    """What collecting one source did; ``error`` is set when nothing could be read."""

    name: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_modified: bool = False
    error: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error


def collect(engine: Engine, sources: Sequence[Source]) -> list[SourceReport]:
    """Fetch each source in turn and store what it yields; one report per source."""
    return [collect_one(engine, source) for source in sources]


def collect_one(engine: Engine, source: Source) -> SourceReport:
    report = SourceReport(source.name)
    with session_scope(engine) as session:
        state = session.get(SourceState, source.name) or SourceState(name=source.name)
        validators = Validators(state.etag, state.last_modified)
    started = utcnow()
    try:
        result = source.fetch(validators)
    except SourceError as exc:
        # `digest status` shows this: with the hint, the admin also reads what to do.
        report.error = f"{exc} ({exc.hint})" if exc.hint else str(exc)
        _record_failure(engine, source, report.error, started)
        log.warning("collect source=%s status=error error=%s", source.name, report.error)
        return report

    report.not_modified = result.not_modified
    report.problems = result.problems
    report.warnings = result.warnings
    if not result.not_modified:
        store_entries(engine, source.name, result.entries, report)
    # "warning": the feed is not what it claims (its reason is the error column).
    status = "not-modified" if result.not_modified else "warning" if result.warnings else "ok"
    with session_scope(engine) as session:
        state = session.get(SourceState, source.name) or SourceState(name=source.name)
        state.url = getattr(source, "location", state.url)
        # A cut validator would never match again: one too long for its column is not kept.
        state.etag = _fitting(result.validators.etag, SourceState, "etag")
        state.last_modified = _fitting(result.validators.last_modified, SourceState,
                                       "last_modified")
        state.last_fetched_at = started
        state.last_success_at = started
        if not (result.not_modified and state.last_status == "warning"):
            # (an unchanged feed is as suspect as it was: a 304 keeps the warning)
            state.last_status = status
            state.last_error = "; ".join(result.warnings + result.problems)[:2000]
        state.failures_in_row = 0
        if not result.not_modified:
            state.entries_last_fetch = len(result.entries)
        session.add(state)
    log.info("collect source=%s status=%s new=%d updated=%d unchanged=%d problems=%d",
             source.name, status,
             report.new, report.updated, report.unchanged, len(report.problems))
    for warning in result.warnings:
        log.warning("collect source=%s warning=%s", source.name, warning)
    return report


def _record_failure(engine: Engine, source: Source, error: str, when: object) -> None:
    with session_scope(engine) as session:
        state = session.get(SourceState, source.name) or SourceState(name=source.name)
        state.url = getattr(source, "location", state.url)
        state.last_fetched_at = when  # type: ignore[assignment]
        state.last_status = "error"
        state.last_error = error[:2000]
        state.failures_in_row += 1
        session.add(state)


def store_entries(engine: Engine, source_name: str, entries: Sequence[Entry],
                  report: SourceReport) -> None:
    """Insert new entries, update changed ones, leave the rest untouched."""
    hashes = {entry.guid: content_hash(entry) for entry in entries}
    now = utcnow()
    with session_scope(engine) as session:
        existing = {
            post.guid: post
            for post in session.scalars(
                select(Post).where(Post.source == source_name, Post.guid.in_(list(hashes)))
            )
        } if hashes else {}
        for entry in entries:
            post = existing.get(entry.guid)
            if post is None:
                session.add(Post(source=source_name, guid=entry.guid, content_hash=hashes[entry.guid],
                                 first_seen_at=now, changed_at=now, **_fields(entry)))
                report.new += 1
            elif post.content_hash != hashes[entry.guid]:
                for name, value in _fields(entry).items():
                    setattr(post, name, value)
                post.content_hash = hashes[entry.guid]
                post.changed_at = now
                report.updated += 1
            else:
                report.unchanged += 1


def _column_length(model: type, column: str) -> int:
    return model.__table__.c[column].type.length  # type: ignore[attr-defined]


def _fitting(value: str, model: type, column: str) -> str:
    return value if len(value) <= _column_length(model, column) else ""


def _fields(entry: Entry) -> dict[str, object]:
    # PostgreSQL refuses a value longer than its column (SQLite keeps it): a title or a name is
    # cut to fit, but an over-long URL is dropped, since a cut one would lead nowhere.
    return {
        "url": _fitting(entry.url, Post, "url"),
        "title": entry.title[:_column_length(Post, "title")],
        "author": entry.author[:_column_length(Post, "author")],
        "published_at": entry.published_at,
        "categories": list(entry.categories),
        "summary": entry.summary,
        "body_html": entry.body_html,
    }


def content_hash(entry: Entry) -> str:
    payload = json.dumps([entry.url, entry.title, entry.author,
                          entry.published_at.isoformat() if entry.published_at else None,
                          list(entry.categories), entry.summary, entry.body_html],
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def recent_categories(engine: Engine, *, posts: int = 500) -> list[str]:
    """The categories of the newest ``posts`` posts, the most used first: the topics a reader
    is offered on the sign-up and preferences pages."""
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    with Session(engine) as session:
        for categories in session.scalars(select(Post.categories)
                                          .order_by(Post.first_seen_at.desc()).limit(posts)):
            for category in categories or ():
                key = category.casefold()
                names.setdefault(key, category)
                counts[key] = counts.get(key, 0) + 1
    return [names[key] for key in sorted(counts, key=lambda k: (-counts[k], k))]
