"""When each list sends: its local send time, time zone and days, turned into UTC instants.

Pure calendar logic, no clocks or databases: the scheduler (digest/scheduler.py) asks which
issue is due now, and `digest status` which comes next. Days are counted in the list's time
zone, so a list sends once per local day whatever the clocks do: on the day they spring
forward a 07:00 send is an hour earlier in UTC, and a send time that does not exist that day
(02:30 in the gap) is taken as the instant the wall clock jumps over it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import InputError


class ScheduledList(Protocol):
    """The schedule settings of a list as stored (a subscribers.models.MailingList row):
    declared here so that this bottom layer need not import the people domain."""

    id: int | None
    slug: str
    send_time: str
    time_zone: str
    days: str
    collect_lead_minutes: int
    per_subscriber_time: bool


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ALIASES = {"daily": "mon-sun", "every day": "mon-sun", "weekdays": "mon-fri",
            "weekends": "sat-sun"}
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


def parse_time(text: str) -> time:
    match = _TIME.match((text or "").strip())
    if not match:
        raise InputError(f"{text!r} is not a time of day", hint="write it as HH:MM, e.g. 07:00")
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo((name or "").strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(f"{name!r} is not a time zone",
                         hint="use an IANA name such as Europe/London or America/New_York"
                         ) from None


def parse_days(text: str) -> frozenset[int]:
    """"mon-fri", "daily", "mon,wed,fri", "sat-sun" → weekday numbers (Monday is 0)."""
    spec = _ALIASES.get((text or "").strip().lower(), (text or "").strip().lower())
    days: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        ends = [e.strip()[:3] for e in part.split("-")]
        if len(ends) > 2 or any(e not in DAY_NAMES for e in ends):
            raise InputError(f"{text!r} is not a set of days",
                             hint="e.g. daily, mon-fri, sat-sun or mon,wed,fri")
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        span = range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)]
        days.update(span)
    if not days:
        raise InputError(f"{text!r} names no day", hint="e.g. daily or mon-fri")
    return frozenset(days)


def parse_zones(names: Iterable[str]) -> list[ZoneInfo]:
    """The zones among ``names`` that exist: each was checked when stored, but a zone can
    later drop out of tzdata, and one such subscriber must not stop a list."""
    zones = []
    for name in names:
        try:
            zones.append(parse_zone(name))
        except InputError:
            continue
    return zones


def describe_schedule(mailing_list: ScheduledList) -> str:
    """A list's schedule as `lists list` and `status` show it."""
    if not mailing_list.send_time:
        return "not scheduled"
    zone = mailing_list.time_zone
    if mailing_list.per_subscriber_time:
        zone = f"in each subscriber’s time zone (default {zone})"
    text = f"sends {mailing_list.days} at {mailing_list.send_time} {zone}"
    if mailing_list.collect_lead_minutes:
        text += f", collecting {mailing_list.collect_lead_minutes} min before"
    return text


def describe_days(days: Iterable[int]) -> str:
    wanted = sorted(set(days))
    if wanted == list(range(7)):
        return "daily"
    if wanted == list(range(5)):
        return "mon-fri"
    return ",".join(DAY_NAMES[d] for d in wanted)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock time ``at`` on ``day`` in ``zone``.

    In the autumn the hour that happens twice counts the first time (fold=0); in the spring
    a time that does not happen is read with the offset before the jump, which lands it just
    after the jump — once, either way.
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class Slot:
    """One scheduled run: the issue date (local to the list) and when it is due (UTC)."""

    issue_date: date
    at: datetime


@dataclass(frozen=True)
class ListSchedule:
    list_id: int
    slug: str
    send_time: time
    zone: ZoneInfo
    days: frozenset[int]
    lead: timedelta = timedelta(0)
    per_subscriber_time: bool = False

    @classmethod
    def of(cls, mailing_list: ScheduledList) -> ListSchedule | None:
        """The schedule of a MailingList row, or None if it is not scheduled."""
        if not mailing_list.send_time:
            return None
        return cls(list_id=mailing_list.id, slug=mailing_list.slug,  # type: ignore[arg-type]
                   send_time=parse_time(mailing_list.send_time),
                   zone=parse_zone(mailing_list.time_zone),
                   days=parse_days(mailing_list.days),
                   lead=timedelta(minutes=mailing_list.collect_lead_minutes),
                   per_subscriber_time=mailing_list.per_subscriber_time)

    def slots(self, start: datetime, end: datetime,
              zones: Iterable[ZoneInfo] = ()) -> Iterator[Slot]:
        """Slots due in [start, end], oldest first. With ``zones`` (per-subscriber time), a
        day's slot is the earliest of its send instants in those zones and the list's."""
        all_zones = {self.zone, *zones}
        # Local days in any zone lie within a day and a half of the UTC date.
        day = (start - timedelta(days=2)).date()
        while day <= (end + timedelta(days=2)).date():
            if day.weekday() in self.days:
                at = min(local_instant(day, self.send_time, z) for z in all_zones)
                if start <= at <= end:
                    yield Slot(day, at)
            day += timedelta(days=1)

    def latest_due(self, now: datetime, grace: timedelta,
                   zones: Iterable[ZoneInfo] = ()) -> Slot | None:
        """The newest slot due within the grace period: what a scheduler that was down (or
        just started) must still run. Older missed slots are never run: the next edition
        takes everything new since the last one."""
        due = list(self.slots(now - grace, now, zones))
        return due[-1] if due else None

    def next_slot(self, now: datetime, zones: Iterable[ZoneInfo] = ()) -> Slot | None:
        upcoming = self.slots(now + timedelta(microseconds=1), now + timedelta(days=8), zones)
        return next(upcoming, None)
