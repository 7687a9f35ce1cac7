"""Storing checked import rows in bulk: a few set-based statements per batch, not an ORM object
per row.

Invariants: each batch is one transaction (a failure keeps the batches before it); a row
changes a subscriber only where the file gives a different value, so importing a file again
changes nothing; someone who unsubscribed stays unsubscribed unless ``resubscribe``; an
address seen on an earlier line is reported and skipped (the first line wins). Addresses
already read are remembered in a temporary table on the import's own connection, not in a
Python dict, so memory stays flat at a million rows. ``dry_run`` reads and counts exactly as a
real import would and writes nothing but that temporary table.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (Column, Connection, Engine, Integer, MetaData, String, Table, bindparam,
                        insert, select, text, update)

from digest.timeutil import utcnow
from subscribers.csv_io import ImportReport, ImportRow
from subscribers.models import ACTIVE, UNSUBSCRIBED, Subscriber, Subscription

BATCH_SIZE = 2000
_SEEN = Table("digest_import_seen", MetaData(),
              Column("email_key", String(320), primary_key=True),
              Column("line", Integer, nullable=False),
              prefixes=["TEMPORARY"])
_SUBSCRIBER = Subscriber.__table__
_SUBSCRIPTION = Subscription.__table__


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

    def run(self, rows: Iterable[ImportRow]) -> None:
        with self.engine.connect() as connection:
            with connection.begin():
                connection.execute(text(f"DROP TABLE IF EXISTS {_SEEN.name}"))
                _SEEN.create(connection)
            try:
                batch: dict[str, ImportRow] = {}
                for row in rows:
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

    def _duplicate(self, row: ImportRow, first_line: int) -> None:
        self.report.errors.append((row.line, f"{row.address} already appears on line "
                                             f"{first_line}; kept the first"))

    def _store(self, connection: Connection, batch: dict[str, ImportRow]) -> None:
        with connection.begin():
            for key, line in connection.execute(
                    select(_SEEN.c.email_key, _SEEN.c.line)
                    .where(_SEEN.c.email_key.in_(list(batch)))).all():
                self._duplicate(batch.pop(key), line)
            if not batch:
                return
            connection.execute(insert(_SEEN), [{"email_key": key, "line": row.line}
                                               for key, row in batch.items()])
            ids = self._store_subscribers(connection, batch, now := utcnow())
            self._store_subscriptions(connection, batch, ids, now)

    def _store_subscribers(self, connection: Connection, batch: dict[str, ImportRow],
                           now: datetime) -> dict[str, int]:
        """Insert the new people, update the changed ones; their ids by key."""
        report, ids = self.report, {}
        new, changed = [], []
        for sid, key, name, tier, zone in connection.execute(
                select(_SUBSCRIBER.c.id, _SUBSCRIBER.c.email_key, _SUBSCRIBER.c.name,
                       _SUBSCRIBER.c.tier, _SUBSCRIBER.c.time_zone)
                .where(_SUBSCRIBER.c.email_key.in_(list(batch)))):
            ids[key] = sid
            row = batch[key]
            wanted = (name if row.name is None else row.name,
                      tier if row.tier is None else row.tier,
                      zone if row.time_zone is None else row.time_zone)
            if wanted == (name, tier, zone):
                report.unchanged += 1
                continue
            report.updated += 1
            changed.append({"b_id": sid, "b_name": wanted[0], "b_tier": wanted[1],
                            "b_zone": wanted[2], "b_now": now})
        for key, row in batch.items():
            if key not in ids:
                report.added += 1
                new.append({"email": row.address, "email_key": key, "name": row.name or "",
                            "tier": row.tier or self.default_tier,
                            "time_zone": row.time_zone or "", "created_at": now,
                            "updated_at": now})
        if self.dry_run:
            return ids
        if changed:
            connection.execute(
                update(_SUBSCRIBER).where(_SUBSCRIBER.c.id == bindparam("b_id"))
                .values(name=bindparam("b_name"), tier=bindparam("b_tier"),
                        time_zone=bindparam("b_zone"), updated_at=bindparam("b_now")),
                changed)
        if new:
            connection.execute(insert(_SUBSCRIBER), new)
            ids.update(connection.execute(
                select(_SUBSCRIBER.c.email_key, _SUBSCRIBER.c.id)
                .where(_SUBSCRIBER.c.email_key.in_([row["email_key"] for row in new]))).all())
        return ids

    def _store_subscriptions(self, connection: Connection, batch: dict[str, ImportRow],
                             ids: dict[str, int], now: datetime) -> None:
        """Subscribe each row to the list, or record that the file says they left it."""
        report = self.report
        statuses = dict(connection.execute(
            select(_SUBSCRIPTION.c.subscriber_id, _SUBSCRIPTION.c.status)
            .where(_SUBSCRIPTION.c.list_id == self.list_id,
                   _SUBSCRIPTION.c.subscriber_id.in_(list(ids.values())))).all())
        new, to_status = [], []
        for key, row in batch.items():
            sid = ids.get(key)                      # None: a new person in a dry run
            status = statuses.get(sid) if sid is not None else None
            if row.unsubscribed:                    # the file says this person left the list
                if status is None:
                    new.append({"list_id": self.list_id, "subscriber_id": sid,
                                "status": UNSUBSCRIBED, "created_at": now,
                                "unsubscribed_at": now})
                    report.unsubscribed += 1
                elif status == ACTIVE:
                    to_status.append({"b_sid": sid, "b_status": UNSUBSCRIBED, "b_at": now})
                    report.unsubscribed += 1
            elif status is None:
                new.append({"list_id": self.list_id, "subscriber_id": sid, "status": ACTIVE,
                            "created_at": now, "unsubscribed_at": None})
            elif status != ACTIVE:
                if self.resubscribe:
                    to_status.append({"b_sid": sid, "b_status": ACTIVE, "b_at": None})
                else:
                    report.kept_unsubscribed += 1
        if self.dry_run:
            return
        if new:
            connection.execute(insert(_SUBSCRIPTION), new)
        if to_status:
            connection.execute(
                update(_SUBSCRIPTION)
                .where(_SUBSCRIPTION.c.list_id == self.list_id,
                       _SUBSCRIPTION.c.subscriber_id == bindparam("b_sid"))
                .values(status=bindparam("b_status"), unsubscribed_at=bindparam("b_at")),
                to_status)
