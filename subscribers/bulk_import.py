"""Storing checked import rows in bulk: a few set-based statements per batch, not an ORM object
per row.

Invariants: each batch is one transaction (a failure keeps the batches before it); a row
changes a subscriber only where the file gives a different value, so importing a file again
changes nothing; someone who unsubscribed stays unsubscribed unless ``resubscribe``, and so
does an address erased at the person's request (only a hash of it is kept:
subscribers.suppressions.erasure_key); an address seen on an earlier line is reported and
skipped (the first line wins). Addresses
already read are remembered in a temporary table on the import's own connection, not in a
Python dict, so memory stays flat at a million rows. ``dry_run`` reads and counts exactly as a
real import would and writes nothing but that temporary table.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, text

from digest.timeutil import utcnow
from subscribers.csv_io import ImportReport, ImportRow
from subscribers.models import ACTIVE, UNSUBSCRIBED, Subscriber
from subscribers.suppressions import erasure_key

BATCH_SIZE = 5000          # rows a transaction; IN lists stay far below SQLite's 32,766
_SEEN = Table("digest_import_seen", MetaData(),
              Column("email_key", String(320), primary_key=True),
              Column("line", Integer, nullable=False),
              prefixes=["TEMPORARY"],
              sqlite_with_rowid=False)       # SQLite: one B-tree (the key), not two
_SUBSCRIBER = Subscriber.__table__


class BulkImport:
    """One import of rows into one list."""

    def __init__(self, engine: Engine, report: ImportReport, *, list_id: int,
                 default_tier: str, resubscribe: bool = False, dry_run: bool = False) -> None:
        self.engine = engine
        self.report = report
        self.list_id = list_id
        self.default_tier = default_tier
        self.resubscribe = resubscribe
        self.dry_run = dry_run

    def run(self, rows: Iterable[ImportRow], *, from_line: int = 1,
            stop: threading.Event | None = None) -> None:
        """Store the rows; those before ``from_line`` are only remembered (their addresses
        make a later repeat a duplicate). A set ``stop`` ends the import after the rows read so
        far are stored, with ``report.resume_line`` the first line not stored."""
        with self.engine.connect() as connection:
            # (Not PRAGMA temp_store = MEMORY: the table would then grow in RAM with the file,
            # 160 MB at a million rows instead of a flat 90.)
            with connection.begin():
                connection.execute(text(f"DROP TABLE IF EXISTS {_SEEN.name}"))
                _SEEN.create(connection)
            try:
                batch: dict[str, ImportRow] = {}
                earlier: dict[str, int] = {}
                for row in rows:
                    if row.line < from_line:
                        earlier.setdefault(row.key, row.line)
                        if len(earlier) >= BATCH_SIZE:
                            self._remember(connection, earlier)
                            earlier = {}
                        continue
                    if earlier:
                        self._remember(connection, earlier)
                        earlier = {}
                    if stop is not None and stop.is_set():
                        self.report.resume_line = row.line
                        break
                    first = batch.get(row.key)
                    if first is not None:
                        self._duplicate(row, first.line)
                        continue
                    batch[row.key] = row
                    if len(batch) >= BATCH_SIZE:
                        self._store(connection, batch)
                        batch = {}
                if batch:
                    self._store(connection, batch)
            finally:
                with connection.begin():
                    _SEEN.drop(connection)
        self.report.errors.sort()

    def _remember(self, connection: Connection, earlier: dict[str, int]) -> None:
        """Lines before ``from_line``: their addresses only, as seen."""
        sql = _Sql(connection)
        with connection.begin():
            known = {key for (key,) in sql.select_in(
                f"SELECT email_key FROM {_SEEN.name} WHERE email_key IN ({{}})", list(earlier))}
            sql.many(f"INSERT INTO {_SEEN.name} (email_key, line) VALUES (?, ?)",
                     [(key, line) for key, line in earlier.items() if key not in known])

    def _duplicate(self, row: ImportRow, first_line: int) -> None:
        self.report.errors.append((row.line, f"{row.address} already appears on line "
                                             f"{first_line}; kept the first"))

    def _store(self, connection: Connection, batch: dict[str, ImportRow]) -> None:
        sql = _Sql(connection)
        with connection.begin():
            for key, line in sql.select_in(f"SELECT email_key, line FROM {_SEEN.name} "
                                           "WHERE email_key IN ({})", list(batch)):
                self._duplicate(batch.pop(key), line)
            if not batch:
                return
            sql.many(f"INSERT INTO {_SEEN.name} (email_key, line) VALUES (?, ?)",
                     [(key, row.line) for key, row in batch.items()])
            self._skip_erased(sql, batch)
            if not batch:
                return
            now = sql.timestamp(utcnow())
            ids = self._store_subscribers(sql, batch, now)
            self._store_subscriptions(sql, batch, ids, now)
        if not self.dry_run:
            self.report.stored += len(batch)     # committed: the whole batch, or none of it

    def _skip_erased(self, sql: _Sql, batch: dict[str, ImportRow]) -> None:
        """People erased at their request are not added back, unless ``resubscribe``."""
        hashes = {erasure_key(key): key for key in batch}
        erased = [hashed for (hashed,) in sql.select_in(
            "SELECT email_key FROM suppression WHERE email_key IN ({})", list(hashes))]
        if not erased:
            return
        if self.resubscribe:
            if not self.dry_run:
                sql.select_in("DELETE FROM suppression WHERE email_key IN ({})", erased,
                              fetch=False)
            return
        for hashed in erased:
            self.report.errors.append((batch.pop(hashes[hashed]).line,
                                       "this address was erased at the person's request; not "
                                       "added (--resubscribe adds it)"))

    def _store_subscribers(self, sql: _Sql, batch: dict[str, ImportRow],
                           now: object) -> dict[str, int]:
        """Insert the new people, update the changed ones; their ids by key."""
        report, ids = self.report, {}
        new, changed = [], []
        for sid, key, name, tier, zone, topics in sql.select_in(
                "SELECT id, email_key, name, tier, time_zone, topics FROM subscriber "
                "WHERE email_key IN ({})", list(batch)):
            ids[key] = sid
            row = batch[key]
            wanted = (name if row.name is None else row.name,
                      tier if row.tier is None else row.tier,
                      zone if row.time_zone is None else row.time_zone,
                      topics if row.topics is None else row.topics)
            if wanted == (name, tier, zone, topics):
                report.unchanged += 1
                continue
            report.updated += 1
            changed.append((*wanted, now, sid))
        for key, row in batch.items():
            if key not in ids:
                report.added += 1
                new.append((row.address, key, row.name or "", row.tier or self.default_tier,
                            row.time_zone or "", row.topics or "", now, now))
        if self.dry_run:
            return ids
        if changed:
            sql.many("UPDATE subscriber SET name = ?, tier = ?, time_zone = ?, topics = ?, "
                     "updated_at = ? WHERE id = ?", changed)
        if new:
            sql.many("INSERT INTO subscriber (email, email_key, name, tier, time_zone, topics, "
                     "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", new)
            ids.update(sql.select_in("SELECT email_key, id FROM subscriber "
                                     "WHERE email_key IN ({})", [row[1] for row in new]))
        return ids

    def _store_subscriptions(self, sql: _Sql, batch: dict[str, ImportRow],
                             ids: dict[str, int], now: object) -> None:
        """Subscribe each row to the list, or record that the file says they left it."""
        report, list_id = self.report, self.list_id
        statuses = dict(sql.select_in(
            "SELECT subscriber_id, status FROM subscription "
            f"WHERE list_id = {int(list_id)} AND subscriber_id IN ({{}})", list(ids.values())))
        new, to_status = [], []
        for key, row in batch.items():
            sid = ids.get(key)                      # None: a new person in a dry run
            status = statuses.get(sid) if sid is not None else None
            if row.unsubscribed:                    # the file says this person left the list
                if status is None:
                    new.append((list_id, sid, UNSUBSCRIBED, now, now))
                    report.unsubscribed += 1
                elif status == ACTIVE:
                    to_status.append((UNSUBSCRIBED, now, list_id, sid))
                    report.unsubscribed += 1
            elif status is None:
                new.append((list_id, sid, ACTIVE, now, None))
            elif status != ACTIVE:
                if self.resubscribe:
                    to_status.append((ACTIVE, None, list_id, sid))
                else:
                    report.kept_unsubscribed += 1
        if self.dry_run:
            return
        if new:
            sql.many("INSERT INTO subscription (list_id, subscriber_id, status, created_at, "
                     "unsubscribed_at) VALUES (?, ?, ?, ?, ?)", new)
        if to_status:
            sql.many("UPDATE subscription SET status = ?, unsubscribed_at = ? "
                     "WHERE list_id = ? AND subscriber_id = ?", to_status)


class _Sql:
    """Plain SQL on the driver's own cursor (inside the connection's transaction), in the
    driver's parameter style.

    SQLAlchemy's per-row parameter processing was most of an import's time; these statements
    are simple and portable (SQLite and PostgreSQL), their values plain strings and numbers,
    and times are converted once per batch by the column type itself (``timestamp``).
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        column_type = _SUBSCRIBER.c.created_at.type
        self._time = column_type.dialect_impl(connection.dialect).bind_processor(
            connection.dialect)

    def timestamp(self, value: datetime) -> object:
        return self._time(value) if self._time else value

    def many(self, statement: str, rows: list[tuple]) -> None:
        cursor = self.connection.connection.cursor()
        try:
            cursor.executemany(statement.replace("?", self.mark), rows)
        finally:
            cursor.close()

    def select_in(self, statement: str, values: list, *, fetch: bool = True) -> list[tuple]:
        """``statement`` with ``{}`` where the IN list goes."""
        if not values:
            return []
        cursor = self.connection.connection.cursor()
        try:
            cursor.execute(statement.format(", ".join([self.mark] * len(values))), values)
            return cursor.fetchall() if fetch else []
        finally:
            cursor.close()
