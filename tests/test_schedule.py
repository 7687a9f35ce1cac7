"""The calendar of each list: local send times to UTC, days, grace, and both DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from digest.errors import InputError
from digest.schedule import (ListSchedule, describe_days, local_instant, parse_days, parse_time,
                             parse_zone)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def a_schedule(at: str = "07:00", zone: ZoneInfo = LONDON, days: str = "daily",
               **extra: object) -> ListSchedule:
    return ListSchedule(list_id=1, slug="morning", send_time=parse_time(at), zone=zone,
                        days=parse_days(days), **extra)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def slots_between(schedule: ListSchedule, start: datetime, end: datetime) -> list:
    return [(s.issue_date, s.at) for s in schedule.slots(start, end)]


@pytest.mark.parametrize(("text", "days"), [
    ("daily", {0, 1, 2, 3, 4, 5, 6}), ("mon-fri", {0, 1, 2, 3, 4}), ("sat-sun", {5, 6}),
    ("mon,wed,fri", {0, 2, 4}), ("fri-mon", {4, 5, 6, 0}), ("Weekdays", {0, 1, 2, 3, 4}),
    ("monday-tuesday", {0, 1}),
])
def test_days_are_read_the_way_people_write_them(text, days):
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("bad", ["", "someday", "mon-xyz", "mon--fri", ","])
def test_nonsense_days_are_refused_with_examples(bad):
    with pytest.raises(InputError) as raised:
        parse_days(bad)
    assert "mon-fri" in (raised.value.hint or "")


def test_days_are_shown_in_their_shortest_form():
    assert describe_days(parse_days("mon,tue,wed,thu,fri")) == "mon-fri"
    assert describe_days(parse_days("sun-sat")) == "daily"
    assert describe_days(parse_days("sat-sun")) == "sat,sun"


def test_times_and_zones_are_checked():
    assert parse_time("7:05") == time(7, 5)
    for bad in ("25:00", "07:60", "7am", ""):
        with pytest.raises(InputError):
            parse_time(bad)
    assert parse_zone("America/New_York").key == "America/New_York"
    with pytest.raises(InputError) as raised:
        parse_zone("Mars/Olympus")
    assert "Europe/London" in raised.value.hint


def test_london_sends_at_seven_local_through_both_clock_changes():
    schedule = a_schedule("07:00", LONDON)
    # Clocks go forward on Sunday 29 March 2026 and back on Sunday 25 October 2026.
    spring = slots_between(schedule, utc(2026, 3, 28, 0), utc(2026, 3, 30, 23))
    assert spring == [(date(2026, 3, 28), utc(2026, 3, 28, 7)),     # GMT
                      (date(2026, 3, 29), utc(2026, 3, 29, 6)),     # BST from 01:00 UTC
                      (date(2026, 3, 30), utc(2026, 3, 30, 6))]
    autumn = slots_between(schedule, utc(2026, 10, 24, 0), utc(2026, 10, 26, 23))
    assert autumn == [(date(2026, 10, 24), utc(2026, 10, 24, 6)),
                      (date(2026, 10, 25), utc(2026, 10, 25, 7)),   # GMT again
                      (date(2026, 10, 26), utc(2026, 10, 26, 7))]


def test_new_york_sends_at_seven_local_through_both_clock_changes():
    schedule = a_schedule("07:00", NEW_YORK)
    # DST starts Sunday 8 March 2026, ends Sunday 1 November 2026.
    assert slots_between(schedule, utc(2026, 3, 7, 0), utc(2026, 3, 9, 23)) == [
        (date(2026, 3, 7), utc(2026, 3, 7, 12)), (date(2026, 3, 8), utc(2026, 3, 8, 11)),
        (date(2026, 3, 9), utc(2026, 3, 9, 11))]
    assert slots_between(schedule, utc(2026, 10, 31, 0), utc(2026, 11, 2, 23)) == [
        (date(2026, 10, 31), utc(2026, 10, 31, 11)), (date(2026, 11, 1), utc(2026, 11, 1, 12)),
        (date(2026, 11, 2), utc(2026, 11, 2, 12))]


@pytest.mark.parametrize(("zone", "day", "at"), [
    (NEW_YORK, date(2026, 3, 8), "02:30"),    # does not exist: the clock jumps 02:00 → 03:00
    (NEW_YORK, date(2026, 11, 1), "01:30"),   # happens twice: 01:00–02:00 is repeated
    (LONDON, date(2026, 3, 29), "01:30"),
    (LONDON, date(2026, 10, 25), "01:30"),
])
def test_a_send_time_in_the_gap_or_the_overlap_still_sends_once_that_day(zone, day, at):
    schedule = a_schedule(at, zone)
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    slots = [s for s in schedule.slots(start - timedelta(hours=3), start + timedelta(hours=30))
             if s.issue_date == day]
    assert len(slots) == 1
    assert slots[0].at.astimezone(zone).date() == day


def test_the_repeated_hour_counts_the_first_time():
    assert local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)


def test_weekday_lists_skip_the_weekend():
    schedule = a_schedule("07:00", LONDON, "mon-fri")
    dates = [s.issue_date for s in schedule.slots(utc(2026, 11, 20), utc(2026, 11, 24, 23))]
    assert dates == [date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24)]   # Fri, Mon, Tue


def test_a_run_missed_while_down_is_due_within_the_grace_period():
    schedule = a_schedule("07:00", LONDON)
    grace = timedelta(hours=3)
    # Down from 06:50 to 07:20 UTC (GMT in November): today's run is due when it comes back.
    assert schedule.latest_due(utc(2026, 11, 25, 6, 50), grace) is None     # nothing due yet
    came_back = schedule.latest_due(utc(2026, 11, 25, 7, 20), grace)
    assert came_back.issue_date == date(2026, 11, 25)
    # After the grace period, today's run is not made up: tomorrow's takes everything new.
    assert schedule.latest_due(utc(2026, 11, 25, 10, 30), grace) is None


def test_down_for_three_days_only_the_latest_slot_is_due():
    schedule = a_schedule("07:00", LONDON)
    due = schedule.latest_due(utc(2026, 11, 25, 8, 0), timedelta(days=4))
    assert due.issue_date == date(2026, 11, 25)          # one slot, not the three missed


def test_the_next_slot_and_per_subscriber_zones():
    schedule = a_schedule("07:00", LONDON, per_subscriber_time=True)
    now = utc(2026, 11, 25, 8, 0)
    assert schedule.next_slot(now).at == utc(2026, 11, 26, 7)
    # With a subscriber in Tokyo, the 26th's edition is due at 07:00 Tokyo (22:00 UTC).
    tokyo = ZoneInfo("Asia/Tokyo")
    assert schedule.next_slot(now, [tokyo]) .at == utc(2026, 11, 25, 22)
    assert schedule.next_slot(now, [tokyo]).issue_date == date(2026, 11, 26)
