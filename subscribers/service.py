"""Everything an admin does to lists and subscribers: add, import, export, unsubscribe, remove.

Addresses are validated and normalised (email-validator); a second add of the same address
updates the row; an unknown tier is an error that lists the known ones; an import reports each
bad row by its line number and stores the good ones.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, Select, and_, delete, exists, func, select, update
from sqlmodel import Session

from digest.db import session_scope
from digest.errors import InputError, NotFoundError
from digest.models import Delivery, Edition
from digest.timeutil import utcnow
from subscribers.models import MailingList, Subscriber, Subscription, Suppression
from digest.schedule import describe_days, parse_days, parse_time, parse_zone
from subscribers.validation import check_slug, check_tier, clean_name, normalise_email

ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
IMPORT_BATCH = 1000
# status and subscribed_at are what the export adds; status is read, subscribed_at ignored.
IMPORT_COLUMNS = ("email", "name", "tier", "timezone", "status")


@dataclass
class AddResult:
    subscriber: Subscriber
    created: bool
    resubscribed: bool = False
    suppressed_reason: str = ""


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


@dataclass(frozen=True)
class _ImportRow:
    line: int
    address: str
    name: str | None
    tier: str | None
    time_zone: str | None
    unsubscribed: bool


@dataclass(frozen=True)
class Profile:
    subscriber: Subscriber
    subscriptions: list[tuple[str, str, datetime]]          # (list slug, status, since)
    deliveries: list[tuple[int, str, date, str, int, str, str]]


@dataclass(frozen=True)
class SubscriberRow:
    email: str
    name: str
    tier: str
    list_slug: str
    status: str
    subscribed_at: str
    time_zone: str = ""


class SubscriberService:
    """Lists and subscribers, with the tier names and address policy from the config."""

    def __init__(self, engine: Engine, *, tiers: Sequence[str], default_tier: str,
                 check_deliverability: bool = False) -> None:
        self.engine = engine
        self.tiers = list(tiers)
        self.default_tier = default_tier
        self.check_deliverability = check_deliverability

    # -- lists ---------------------------------------------------------------------------

    def create_list(self, slug: str, name: str, *, exist_ok: bool = False,
                    **schedule: object) -> tuple[MailingList, bool]:
        """Create a list (with an optional schedule, see :meth:`update_list`)."""
        check_slug(slug)
        name = clean_name(name) or slug
        with session_scope(self.engine) as session:
            existing = session.scalar(select(MailingList).where(MailingList.slug == slug))
            if existing is not None:
                if exist_ok:
                    return existing, False
                raise InputError(f"a list {slug!r} already exists",
                                 hint="pick another slug, or pass --exist-ok; "
                                      "`digest lists update` changes one")
            mailing_list = MailingList(slug=slug, name=name)
            session.add(mailing_list)
            session.flush()
        if any(value is not None for value in schedule.values()):
            return self.update_list(slug, **schedule), True  # type: ignore[arg-type]
        return mailing_list, True

    def update_list(self, slug: str, *, name: str | None = None, send_time: str | None = None,
                    time_zone: str | None = None, days: str | None = None,
                    lead_minutes: int | None = None, per_subscriber_time: bool | None = None,
                    alert_on_empty: bool | None = None) -> MailingList:
        """Change a list's name or schedule; send_time "" unschedules it. Values are checked
        and stored in one canonical form ("07:00", "Europe/London", "mon-fri")."""
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = clean_name(name) or slug
        if send_time is not None:
            changes["send_time"] = _canonical_time(send_time) if send_time else ""
        if time_zone is not None:
            changes["time_zone"] = parse_zone(time_zone).key
        if days is not None:
            changes["days"] = describe_days(parse_days(days))
        if lead_minutes is not None:
            if not 0 <= lead_minutes <= 24 * 60:
                raise InputError(f"a lead of {lead_minutes} minutes is out of range",
                                 hint="give 0 to 1440 minutes")
            changes["collect_lead_minutes"] = lead_minutes
        if per_subscriber_time is not None:
            changes["per_subscriber_time"] = per_subscriber_time
        if alert_on_empty is not None:
            changes["alert_on_empty"] = alert_on_empty
        with session_scope(self.engine) as session:
            mailing_list = self.get_list(slug, session)
            for key, value in changes.items():
                setattr(mailing_list, key, value)
            session.add(mailing_list)
            return mailing_list

    def time_zones_of(self, list_id: int) -> list[str]:
        """The time zones of a list's active subscribers who gave one."""
        with Session(self.engine) as session:
            return list(session.scalars(
                select(Subscriber.time_zone).distinct()
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .where(Subscription.list_id == list_id, Subscription.status == ACTIVE,
                       Subscriber.time_zone != "")))

    def lists_with_counts(self) -> list[tuple[MailingList, int, int]]:
        """Each list with its active and unsubscribed subscriber counts."""
        active = func.count().filter(Subscription.status == ACTIVE)
        gone = func.count().filter(Subscription.status == UNSUBSCRIBED)
        with Session(self.engine) as session:
            rows = session.execute(
                select(MailingList, active, gone)
                .join(Subscription, Subscription.list_id == MailingList.id, isouter=True)
                .group_by(MailingList.id)
                .order_by(MailingList.slug)
            ).all()
            return [(row[0], row[1], row[2]) for row in rows]

    def get_list(self, slug: str, session: Session | None = None) -> MailingList:
        if session is None:
            with Session(self.engine) as own:
                return self.get_list(slug, own)
        found = session.scalar(select(MailingList).where(MailingList.slug == slug))
        if found is None:
            known = session.scalars(select(MailingList.slug).order_by(MailingList.slug)).all()
            raise NotFoundError(f"no list {slug!r}",
                                hint=(f"known lists: {', '.join(known)}" if known else
                                      "create one with `digest lists create SLUG --name NAME`"))
        return found

    # -- subscribers ---------------------------------------------------------------------

    def add(self, email: str, *, list_slug: str, name: str | None = None,
            tier: str | None = None, time_zone: str | None = None) -> AddResult:
        """Add (or update) a subscriber and make sure they are subscribed to the list."""
        address, key = normalise_email(email, check_deliverability=self.check_deliverability)
        clean = clean_name(name) if name is not None else None
        chosen_tier = check_tier(tier, self.tiers) if tier is not None else None
        zone = (parse_zone(time_zone).key if time_zone else "") if time_zone is not None \
            else None
        with session_scope(self.engine) as session:
            mailing_list = self.get_list(list_slug, session)
            subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
            created = subscriber is None
            if subscriber is None:
                subscriber = Subscriber(email=address, email_key=key, name=clean or "",
                                        tier=chosen_tier or self.default_tier,
                                        time_zone=zone or "")
                session.add(subscriber)
                session.flush()
            else:
                subscriber.email = address
                if clean is not None:
                    subscriber.name = clean
                if chosen_tier is not None:
                    subscriber.tier = chosen_tier
                if zone is not None:
                    subscriber.time_zone = zone
                subscriber.updated_at = utcnow()
            resubscribed = _subscribe(session, mailing_list.id, subscriber.id, reactivate=True)
            suppression = session.scalar(select(Suppression).where(Suppression.email_key == key))
            return AddResult(subscriber, created, resubscribed,
                             suppression.reason if suppression else "")

    def import_csv(self, path: str | Path, *, list_slug: str,
                   resubscribe: bool = False) -> ImportReport:
        """Import ``email,name,tier`` rows. Bad rows are reported by line; good rows stored.

        People who unsubscribed stay unsubscribed unless ``resubscribe`` is set: an import
        must not undo someone's choice to leave. An optional ``status`` column (as the export
        writes it) saying ``unsubscribed`` stores that subscription unsubscribed, so that an
        export imported elsewhere does not subscribe the people who had left.
        """
        report = ImportReport()
        with Session(self.engine) as session:
            list_id = self.get_list(list_slug, session).id
        batch: dict[str, _ImportRow] = {}
        # Every address seen in the file and its line, not only the current batch's: a
        # duplicate 1000 rows further down must be reported too, not silently overwrite.
        seen: dict[str, int] = {}
        for line, row in self._read_csv(Path(path), report):
            try:
                address, key = normalise_email(_csv_unsafe(row.get("email") or ""),
                                               check_deliverability=self.check_deliverability)
                name = clean_name(_csv_unsafe(row["name"])) if row.get("name") is not None else None
                raw_tier = (row.get("tier") or "").strip()
                tier = check_tier(raw_tier, self.tiers) if raw_tier else None
                raw_zone = (row.get("timezone") or "").strip()
                zone = parse_zone(raw_zone).key if raw_zone else None
                status = (row.get("status") or "").strip().lower()
                if status not in ("", ACTIVE, UNSUBSCRIBED):
                    raise InputError(f"unknown status {status!r}; the status column may say "
                                     f"{ACTIVE} or {UNSUBSCRIBED}")
            except InputError as exc:
                report.errors.append((line, exc.message))
                continue
            if key in seen:
                report.errors.append((line, f"{address} already appears on line {seen[key]}; "
                                            "kept the first"))
                continue
            seen[key] = line
            batch[key] = _ImportRow(line, address, name, tier, zone, status == UNSUBSCRIBED)
            if len(batch) >= IMPORT_BATCH:
                self._store_batch(list_id, batch, report, resubscribe)
                batch = {}
        if batch:
            self._store_batch(list_id, batch, report, resubscribe)
        return report

    def _read_csv(self, path: Path, report: ImportReport) -> Iterator[tuple[int, dict[str, str]]]:
        """Each non-empty row with the line it starts on (a quoted field may span lines)."""
        _check_utf8(path)
        try:
            handle = path.open(newline="", encoding="utf-8-sig")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from exc
        with handle:
            # csv.reader, not DictReader: its line_num is the line a row *ends* on, and
            # DictReader skips blank lines unseen, so the start of a row could not be known.
            reader = csv.reader(handle)
            try:
                header = [h.strip().lower() for h in next(reader, [])]
            except csv.Error:
                header = []
            if "email" not in header:
                raise InputError(f"{path}: line 1 must be a header naming an 'email' column "
                                 f"(found: {', '.join(header) or 'nothing'})",
                                 hint="the columns are email,name,tier")
            unknown = [h for h in header if h not in IMPORT_COLUMNS]
            if unknown:
                report.warnings.append(f"ignored unknown column(s): {', '.join(unknown)}")
            end = reader.line_num
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
                end = reader.line_num
                if len(values) > len(header):
                    report.errors.append((start, "more fields than the header has columns"))
                    continue
                row = dict(zip(header, values))
                if not any(value.strip() for value in row.values()):
                    continue
                yield start, row

    def _store_batch(self, list_id: int, batch: dict[str, _ImportRow], report: ImportReport,
                     resubscribe: bool) -> None:
        with session_scope(self.engine) as session:
            existing = {s.email_key: s for s in session.scalars(
                select(Subscriber).where(Subscriber.email_key.in_(list(batch))))}
            now = utcnow()
            for key, row in batch.items():
                subscriber = existing.get(key)
                if subscriber is None:
                    subscriber = Subscriber(email=row.address, email_key=key,
                                            name=row.name or "", tier=row.tier or self.default_tier,
                                            time_zone=row.time_zone or "")
                    session.add(subscriber)
                    existing[key] = subscriber
                    report.added += 1
                    continue
                changed = False
                if row.name is not None and row.name != subscriber.name:
                    subscriber.name, changed = row.name, True
                if row.tier is not None and row.tier != subscriber.tier:
                    subscriber.tier, changed = row.tier, True
                if row.time_zone is not None and row.time_zone != subscriber.time_zone:
                    subscriber.time_zone, changed = row.time_zone, True
                if changed:
                    subscriber.updated_at = now
                    report.updated += 1
                else:
                    report.unchanged += 1
            session.flush()
            ids = [s.id for s in existing.values()]
            subscriptions = {s.subscriber_id: s for s in session.scalars(
                select(Subscription).where(Subscription.list_id == list_id,
                                           Subscription.subscriber_id.in_(ids)))}
            for key, subscriber in existing.items():
                subscription = subscriptions.get(subscriber.id)
                if batch[key].unsubscribed:  # the file says this person left the list
                    if subscription is None:
                        session.add(Subscription(list_id=list_id, subscriber_id=subscriber.id,
                                                 status=UNSUBSCRIBED, unsubscribed_at=now))
                        report.unsubscribed += 1
                    elif subscription.status == ACTIVE:
                        subscription.status, subscription.unsubscribed_at = UNSUBSCRIBED, now
                        report.unsubscribed += 1
                elif subscription is None:
                    session.add(Subscription(list_id=list_id, subscriber_id=subscriber.id))
                elif subscription.status != ACTIVE:
                    if resubscribe:
                        subscription.status, subscription.unsubscribed_at = ACTIVE, None
                    else:
                        report.kept_unsubscribed += 1

    def rows(self, list_slug: str | None = None) -> list[SubscriberRow]:
        with Session(self.engine) as session:
            query = _subscriber_rows_query()
            if list_slug is not None:
                query = query.where(MailingList.id == self.get_list(list_slug, session).id)
            return [SubscriberRow(*row[:5], row[5].date().isoformat(), row[6])
                    for row in session.execute(query)]

    def export_csv(self, list_slug: str, out: IO[str]) -> int:
        """Write the list's subscribers as CSV (the import's columns first); return the count."""
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["email", "name", "tier", "timezone", "status", "subscribed_at"])
        count = 0
        for row in self.rows(list_slug):
            writer.writerow([_csv_safe(row.email), _csv_safe(row.name), row.tier, row.time_zone,
                             row.status, row.subscribed_at])
            count += 1
        return count

    def unsubscribe(self, email: str, *, list_slug: str | None = None) -> int:
        """Unsubscribe from one list or from all; the number of subscriptions changed."""
        subscriber = self.get_subscriber(email)
        with session_scope(self.engine) as session:
            condition = and_(Subscription.subscriber_id == subscriber.id,
                             Subscription.status == ACTIVE)
            if list_slug is not None:
                condition = and_(condition,
                                 Subscription.list_id == self.get_list(list_slug, session).id)
            result = session.execute(update(Subscription).where(condition)
                                     .values(status=UNSUBSCRIBED, unsubscribed_at=utcnow()))
            return result.rowcount

    def subscription_of(self, subscriber_id: int, list_id: int) -> tuple[str, str, str] | None:
        """(address, list name, status) of a subscription named by a signed link, if any."""
        with Session(self.engine) as session:
            row = session.execute(
                select(Subscriber.email, MailingList.name, Subscription.status)
                .join(Subscription, Subscription.subscriber_id == Subscriber.id)
                .join(MailingList, MailingList.id == Subscription.list_id)
                .where(Subscriber.id == subscriber_id, MailingList.id == list_id)).first()
        return (row[0], row[1], row[2]) if row else None

    def unsubscribe_by_id(self, subscriber_id: int, list_id: int) -> bool:
        """One-click unsubscribe from a signed link; True if it changed anything."""
        with session_scope(self.engine) as session:
            result = session.execute(
                update(Subscription)
                .where(Subscription.subscriber_id == subscriber_id,
                       Subscription.list_id == list_id, Subscription.status == ACTIVE)
                .values(status=UNSUBSCRIBED, unsubscribed_at=utcnow()))
            return result.rowcount > 0

    def remove(self, email: str) -> None:
        """Erase a subscriber: the row, their subscriptions and their delivery history."""
        subscriber = self.get_subscriber(email)
        with session_scope(self.engine) as session:
            # Explicit deletes, not only ON DELETE CASCADE: a SQLite connection opened
            # without the foreign_keys pragma would leave orphans behind.
            session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber.id))
            session.execute(delete(Subscription).where(Subscription.subscriber_id == subscriber.id))
            session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))

    def profile(self, email: str, *, deliveries: int = 10) -> Profile:
        """What `digest subscribers show` prints: the row, its lists, its latest deliveries."""
        subscriber = self.get_subscriber(email)
        with Session(self.engine) as session:
            subscriptions = [(slug, status, since) for slug, status, since in session.execute(
                select(MailingList.slug, Subscription.status, Subscription.created_at)
                .join(MailingList, MailingList.id == Subscription.list_id)
                .where(Subscription.subscriber_id == subscriber.id)
                .order_by(MailingList.slug))]
            recent = [tuple(row) for row in session.execute(
                select(Edition.id, MailingList.slug, Edition.issue_date, Delivery.status,
                       Delivery.attempts, Delivery.provider_message_id, Delivery.last_error)
                .join(Edition, Edition.id == Delivery.edition_id)
                .join(MailingList, MailingList.id == Edition.list_id)
                .where(Delivery.subscriber_id == subscriber.id)
                .order_by(Edition.issue_date.desc(), Edition.id.desc()).limit(deliveries))]
        return Profile(subscriber, subscriptions, recent)  # type: ignore[arg-type]

    def get_subscriber(self, email: str) -> Subscriber:
        _address, key = normalise_email(email, check_deliverability=False)
        with Session(self.engine) as session:
            subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
        if subscriber is None:
            raise NotFoundError(f"no subscriber {email!r}",
                                hint="`digest subscribers list` shows who is there")
        return subscriber


def _subscribe(session: Session, list_id: int, subscriber_id: int, *, reactivate: bool) -> bool:
    """Make sure the subscription exists; True if an unsubscribed one was made active again."""
    subscription = session.scalar(select(Subscription).where(
        Subscription.list_id == list_id, Subscription.subscriber_id == subscriber_id))
    if subscription is None:
        session.add(Subscription(list_id=list_id, subscriber_id=subscriber_id))
        return False
    if subscription.status != ACTIVE and reactivate:
        subscription.status, subscription.unsubscribed_at = ACTIVE, None
        return True
    return False


def _subscriber_rows_query() -> Select[tuple]:
    return (select(Subscriber.email, Subscriber.name, Subscriber.tier, MailingList.slug,
                   Subscription.status, Subscription.created_at, Subscriber.time_zone)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .order_by(MailingList.slug, Subscriber.email_key))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list; "-2+3" is a formula too
# A value that itself starts with the quote is quoted once more, so that the import, which
# takes one quote off, gives back exactly what was exported ("'=x" must not come back "=x").
_QUOTED_STARTS = (*FORMULA_STARTS, "'")


def _canonical_time(text: str) -> str:
    at = parse_time(text)
    return f"{at:%H:%M}" if not at.second else f"{at:%H:%M:%S}"


def _csv_safe(value: str) -> str:
    # A cell starting with = + - @ runs as a formula in a spreadsheet (CSV injection); the quote
    # that defuses it is taken off again by the import (_csv_unsafe). An address may start
    # with = + - too, so the email column is defused as well.
    return "'" + value if value.startswith(_QUOTED_STARTS) else value


def _csv_unsafe(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(_QUOTED_STARTS) else value


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


def active_recipients(list_id: int) -> Select[tuple[int]]:
    """Subscriber ids of a list's active subscribers whose address is not suppressed.

    The one definition of "who gets this list"; enqueueing runs it inside an INSERT … SELECT.
    """
    return (select(Subscription.subscriber_id)
            .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
            .where(Subscription.list_id == list_id, Subscription.status == ACTIVE,
                   ~exists().where(Suppression.email_key == Subscriber.email_key)))

