"""Business time: working hours with breaks, holidays, cuti bersama, closures, DST, estimates."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailroom import sla
from mailroom.clock import Clock
from mailroom.sla import Calendar, Holidays

pytestmark = pytest.mark.no_database  # runs once, on the SQLite pass

JAKARTA = ZoneInfo("Asia/Jakarta")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
WEEK = sla.parse_hours("08:00-12:00,13:00-17:00")
FRIDAY = sla.parse_hours("08:00-11:30,13:00-17:00")
HR = Calendar("jakarta", "Asia/Jakarta", (WEEK,) * 4 + (FRIDAY, (), ()),
              Holidays("ID"), frozenset({date(2026, 12, 31)}))
WITH_CUTI = Calendar("jakarta", "Asia/Jakarta", HR.hours, Holidays("ID", None,
                                                                   ("public", "government")))
OFFICE = sla.parse_hours("09:00-17:00")
NL = Calendar("amsterdam", "Europe/Amsterdam", (OFFICE,) * 5 + ((), ()), Holidays("NL"))


def wib(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=JAKARTA)  # type: ignore[misc]


def local(moment: datetime, zone: ZoneInfo = JAKARTA) -> str:
    return f"{moment.astimezone(zone):%a %Y-%m-%d %H:%M %Z}"


def test_four_working_hours_from_late_monday_end_on_tuesday_morning() -> None:
    assert local(HR.add(wib(2026, 11, 23, 16, 34), timedelta(hours=4))) == \
        "Tue 2026-11-24 11:34 WIB"


def test_the_lunch_break_does_not_count_and_friday_has_its_own_hours() -> None:
    assert local(HR.add(wib(2026, 11, 23, 11, 0), timedelta(hours=2))) == \
        "Mon 2026-11-23 14:00 WIB"
    assert local(HR.add(wib(2026, 11, 27, 10, 0), timedelta(hours=4))) == \
        "Fri 2026-11-27 15:30 WIB"


def test_days_are_working_days_due_at_the_same_time_of_day() -> None:
    assert local(HR.add(wib(2026, 11, 23, 16, 34), timedelta(days=3))) == \
        "Thu 2026-11-26 16:34 WIB"
    assert local(HR.add(wib(2026, 11, 26, 9, 15), timedelta(days=3))) == \
        "Tue 2026-12-01 09:15 WIB"


def test_an_arrival_out_of_hours_counts_from_the_next_opening() -> None:
    saturday = wib(2026, 11, 28, 10, 0)
    assert local(HR.next_opening(saturday)) == "Mon 2026-11-30 08:00 WIB"
    assert local(HR.add(saturday, timedelta(days=3))) == "Thu 2026-12-03 08:00 WIB"
    assert local(HR.add(wib(2026, 11, 23, 21, 0), timedelta(hours=5))) == \
        "Tue 2026-11-24 14:00 WIB"
    assert not HR.is_open(saturday) and HR.is_open(wib(2026, 11, 30, 8, 0))
    assert not HR.is_open(wib(2026, 11, 30, 12, 30))


def test_public_holidays_are_skipped() -> None:
    friday = wib(2026, 8, 14, 16, 0)  # Monday 17 August is Independence Day
    assert HR.holiday(date(2026, 8, 17)) == "Independence Day"
    assert local(HR.add(friday, timedelta(hours=4))) == "Tue 2026-08-18 11:00 WIB"


def test_cuti_bersama_counts_only_with_the_government_category() -> None:
    arrival = wib(2026, 12, 23, 16, 0)  # 24 Dec is cuti bersama, 25 Dec Christmas
    assert HR.works_on(date(2026, 12, 24)) and not WITH_CUTI.works_on(date(2026, 12, 24))
    assert local(HR.add(arrival, timedelta(hours=4))) == "Thu 2026-12-24 11:00 WIB"
    assert local(WITH_CUTI.add(arrival, timedelta(hours=4))) == "Mon 2026-12-28 11:00 WIB"


def test_closure_dates_are_skipped() -> None:
    assert HR.holiday(date(2026, 12, 31)) == "closed"
    # 31 Dec is closed and 1 Jan is New Year's Day: the second hour falls on Monday 4 Jan
    assert local(HR.add(wib(2026, 12, 30, 16, 0), timedelta(hours=2))) == \
        "Mon 2027-01-04 09:00 WIB"


def test_working_days_keep_local_time_across_the_change_to_winter_time() -> None:
    friday = datetime(2026, 10, 23, 16, 0, tzinfo=AMSTERDAM)  # CEST; Sunday 25 Oct: CET
    due = NL.add(friday, timedelta(days=3))
    assert local(due, AMSTERDAM) == "Wed 2026-10-28 16:00 CET"
    assert due - friday.astimezone(UTC) == timedelta(days=5, hours=1)
    assert local(NL.add(friday, timedelta(hours=4)), AMSTERDAM) == "Mon 2026-10-26 12:00 CET"


def test_working_hours_across_the_change_to_summer_time() -> None:
    friday = datetime(2026, 3, 27, 15, 0, tzinfo=AMSTERDAM)  # CET; Sunday 29 Mar: CEST
    assert local(NL.add(friday, timedelta(hours=8)), AMSTERDAM) == "Mon 2026-03-30 15:00 CEST"
    assert NL.between(friday, NL.add(friday, timedelta(hours=8))) == timedelta(hours=8)


def test_working_time_between_two_moments() -> None:
    assert HR.between(wib(2026, 11, 27, 16, 0), wib(2026, 11, 30, 10, 0)) == timedelta(hours=3)
    assert HR.between(wib(2026, 11, 30, 10, 0), wib(2026, 11, 27, 16, 0)) == timedelta(0)


def test_around_the_clock_is_calendar_time() -> None:
    always = sla.around_the_clock("Asia/Jakarta")
    arrival = wib(2026, 11, 23, 16, 34)
    assert local(always.add(arrival, timedelta(hours=4))) == "Mon 2026-11-23 20:34 WIB"
    assert always.between(arrival, arrival + timedelta(hours=30)) == timedelta(hours=30)


@settings(max_examples=300, deadline=None)
@given(start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                          timezones=st.just(UTC)),
       minutes=st.integers(min_value=0, max_value=24 * 60 - 1))
def test_adding_working_time_and_measuring_it_agree(start: datetime, minutes: int) -> None:
    for calendar in (WITH_CUTI, NL):
        due = calendar.add(start, timedelta(minutes=minutes))
        assert due >= start
        assert calendar.between(start, due) == timedelta(minutes=minutes)
        assert minutes == 0 or calendar.is_open(due - timedelta(seconds=1))


def test_the_estimate_is_the_80th_percentile_once_there_are_enough_samples() -> None:
    arrival, due = wib(2026, 11, 23, 9, 0), wib(2026, 11, 23, 13, 0)
    few = [3600.0] * (sla.ESTIMATE_SAMPLES - 1)
    assert sla.estimate(HR, arrival, few, due) == due
    samples = [60.0 * m for m in range(10, 210, 10)]  # 10 to 200 minutes, 20 of them
    assert sla.percentile(samples, 0.8) == 160 * 60
    assert local(sla.estimate(HR, arrival, samples, due)) == "Mon 2026-11-23 11:40 WIB"
    slow = [6 * 3600.0] * 20  # slower than the target: never promise past the due time
    assert sla.estimate(HR, arrival, slow, due) == due


def test_times_are_written_for_people_in_their_language() -> None:
    moment = wib(2026, 11, 24, 14, 0)
    assert sla.local_time(moment, JAKARTA, "id") == "Selasa, 24 November 2026 pukul 14.00 WIB"
    assert sla.local_time(moment, JAKARTA, "en") == "Tuesday, 24 November 2026 at 14:00 WIB"
    assert sla.in_words(timedelta(hours=4), "id", working=True) == "4 jam kerja"
    assert sla.in_words(timedelta(days=3), "en", working=True) == "3 working days"
    assert sla.in_words(timedelta(days=1, hours=4), "en") == "1 day 4 hours"


@pytest.mark.parametrize(("text", "problem"), [
    ("08:00-12:00,11:00-17:00", "overlaps"),
    ("17:00-08:00", "ends before it starts"),
    ("8-12", "is not a time"),
    ("08:00", "is not a span"),
])
def test_wrong_hours_are_named(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        sla.parse_hours(text)


def test_a_clock_started_at_an_instant_runs_on_when_asked() -> None:
    start = datetime(2026, 11, 23, 2, 15, tzinfo=UTC)
    fixed, running = Clock(start), Clock(start, running=True)
    time.sleep(0.05)
    assert fixed.now() == start and fixed.fixed
    assert running.now() > start and not running.fixed


@settings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                          timezones=st.just(UTC)),
       minutes=st.integers(min_value=0, max_value=60 * 24 * 12))
def test_working_time_of_days_of_hours_is_hours_not_working_days(start: datetime,
                                                                 minutes: int) -> None:
    for calendar in (WITH_CUTI, NL):
        assert calendar.between(start, calendar.after(start, timedelta(minutes=minutes))) == \
            timedelta(minutes=minutes)


def test_a_day_target_that_falls_after_a_short_days_closing_is_due_at_its_closing() -> None:
    short_friday = Calendar("short", "Asia/Jakarta", (WEEK,) * 4 + (((480, 690),), (), ()))
    assert local(short_friday.add(wib(2026, 11, 26, 14, 0), timedelta(days=1))) == \
        "Fri 2026-11-27 11:30 WIB"
    assert local(short_friday.add(wib(2026, 11, 26, 14, 0), timedelta(days=1, hours=1))) == \
        "Mon 2026-11-30 09:00 WIB"
