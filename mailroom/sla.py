"""Business time: calendars, due times counted in working hours, estimates, times told to people."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import babel.dates
import holidays

DAY_MINUTES = 24 * 60
SEARCH_DAYS = 800  # how far a calendar looks for its next working time before giving up
ESTIMATE_SAMPLES = 20  # first responses needed before they, not the target, set the promise
ESTIMATE_PERCENTILE = 0.8
ESTIMATE_WINDOW = timedelta(days=90)  # how far back first responses count for an estimate
UNITS = {
    "en": (("week", "weeks"), ("day", "days"), ("hour", "hours"), ("minute", "minutes")),
    "id": (("minggu", "minggu"), ("hari", "hari"), ("jam", "jam"), ("menit", "menit")),
}
WORKING = {"en": "working ", "id": " kerja"}

Span = tuple[int, int]  # minutes from midnight, local time: (480, 720) is 08:00-12:00


@dataclass(frozen=True)
class Holidays:
    """Public holidays from the `holidays` package: a country, its subdivision, categories."""

    country: str
    subdivision: str | None = None
    categories: tuple[str, ...] = ("public",)

    def table(self) -> holidays.HolidayBase:
        """The holidays of every year asked about (the package fills in years as needed)."""
        return holidays.country_holidays(self.country, subdiv=self.subdivision,
                                         categories=self.categories)


@dataclass(frozen=True)
class Calendar:
    """When a department works: weekly hours in its time zone, less holidays and closures.

    `hours` holds one tuple of spans per weekday, Monday first; `None` means around the clock.
    """

    name: str
    timezone: str
    hours: tuple[tuple[Span, ...], ...] | None = None
    holidays: Holidays | None = None
    closed: frozenset[date] = frozenset()
    _table: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_table", self.holidays.table() if self.holidays else {})

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def always(self) -> bool:
        return self.hours is None

    def works_on(self, day: date) -> bool:
        """Whether `day` (local) has working hours: a weekday with hours, no holiday, not closed."""
        if self.hours is None:
            return True
        return bool(self.hours[day.weekday()]) and day not in self.closed and day not in self._table

    def holiday(self, day: date) -> str:
        """The name of the holiday or closure on `day`, or ''."""
        if day in self.closed:
            return "closed"
        return str(self._table.get(day) or "")

    def spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working spans of local `day` as UTC instants."""
        if not self.works_on(day):
            return []
        hours = self.hours[day.weekday()] if self.hours is not None else ((0, DAY_MINUTES),)
        return [(self._instant(day, start), self._instant(day, end)) for start, end in hours]

    def _instant(self, day: date, minutes: int) -> datetime:
        day = day + timedelta(days=minutes // DAY_MINUTES)
        minutes %= DAY_MINUTES
        local = datetime(day.year, day.month, day.day, minutes // 60, minutes % 60,
                         tzinfo=self.zone)
        return local.astimezone(UTC)

    def _spans_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working spans that end after `moment`, in order, for up to SEARCH_DAYS days."""
        day = moment.astimezone(self.zone).date()
        for offset in range(SEARCH_DAYS):
            for start, end in self.spans(day + timedelta(days=offset)):
                if end > moment:
                    yield start, end
        raise ValueError(f"calendar {self.name!r} has no working time within {SEARCH_DAYS} days")

    def is_open(self, moment: datetime) -> bool:
        if self.always:
            return True
        start, _ = next(self._spans_from(moment))
        return start <= moment

    def next_opening(self, moment: datetime) -> datetime:
        """`moment` itself when it is working time, else the start of the next working span."""
        if self.always:
            return moment.astimezone(UTC)
        start, _ = next(self._spans_from(moment))
        return max(start, moment.astimezone(UTC))

    def add(self, start: datetime, target: timedelta) -> datetime:
        """When `target` of working time, counted from `start`, has passed (UTC).

        Whole days count working days and keep the time of day ('3d' from Monday 16:34 is
        Thursday 16:34); the rest counts working hours. Out of hours, counting starts at the
        next opening.
        """
        if self.always:
            return (start + target).astimezone(UTC)
        moment = self.next_opening(start)
        if target.days:
            moment = self._add_days(moment, target.days)
        rest = target - timedelta(days=target.days)
        return self._add_hours(moment, rest) if rest else moment

    def after(self, start: datetime, working: timedelta) -> datetime:
        """When `working` time (hours of work, however many) counted from `start` has passed:
        the inverse of `between`, for time measured rather than a target as written."""
        if self.always:
            return (start + working).astimezone(UTC)
        return self._add_hours(self.next_opening(start), working)

    def _add_days(self, moment: datetime, days: int) -> datetime:
        """`days` working days later at the same time of day, or that day's closing time."""
        local = moment.astimezone(self.zone)
        day, left = local.date(), days
        for _ in range(SEARCH_DAYS):
            if left == 0:
                break
            day += timedelta(days=1)
            left -= self.works_on(day)
        if left:
            raise ValueError(f"calendar {self.name!r} has no {days} working days within "
                             f"{SEARCH_DAYS} days")
        wall = datetime.combine(day, local.time(), self.zone).astimezone(UTC)
        closing = self.spans(day)[-1][1]
        return closing if wall >= closing else self.next_opening(wall)

    def _add_hours(self, moment: datetime, left: timedelta) -> datetime:
        for start, end in self._spans_from(moment):
            start = max(start, moment)
            if left <= end - start:
                return start + left
            left -= end - start
        raise AssertionError("unreachable: _spans_from raises first")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The working time from `start` to `end`; zero when `end` is not later."""
        if end <= start:
            return timedelta(0)
        if self.always:
            return end - start
        total = timedelta(0)
        for span_start, span_end in self._spans_from(start):
            if span_start >= end:
                break
            total += min(span_end, end) - max(span_start, start)
        return total


AROUND_THE_CLOCK = Calendar("around the clock", "UTC")


def around_the_clock(timezone: str) -> Calendar:
    """A calendar that never closes, shown in `timezone`."""
    return Calendar("around the clock", timezone)


@dataclass(frozen=True)
class Due:
    """The due times a request gets when its clock starts at `start`."""

    start: datetime
    first_response: datetime
    resolution: datetime


def due_times(calendar: Calendar, start: datetime, first_response: timedelta,
              resolution: timedelta) -> Due:
    """When the first response and the resolution fall due for a clock started at `start`."""
    return Due(start, calendar.add(start, first_response), calendar.add(start, resolution))


def estimate(calendar: Calendar, start: datetime, samples: Sequence[float],
             first_response_due: datetime) -> datetime:
    """The promised first response: the 80th percentile of recent ones, never after the due time.

    `samples` are working seconds from arrival to first response; with fewer than
    ESTIMATE_SAMPLES the target itself is the promise.
    """
    if len(samples) < ESTIMATE_SAMPLES:
        return first_response_due
    typical = timedelta(seconds=percentile(samples, ESTIMATE_PERCENTILE))
    return min(calendar.after(start, typical), first_response_due)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with `fraction` of values at or below."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def in_words(duration: timedelta, language: str, working: bool = False) -> str:
    """'1 day 4 hours' / '1 hari 4 jam'; with `working`, '4 working hours' / '4 jam kerja'."""
    minutes = int(duration.total_seconds() // 60)
    week = 10080 if not working else 10**9  # seven working days are not a working week
    amounts = (minutes // week, minutes % week // 1440, minutes % 1440 // 60, minutes % 60)
    names = UNITS.get(language, UNITS["en"])
    parts = [[str(n), name[n != 1]] for n, name in zip(amounts, names, strict=True) if n]
    if not parts:
        return f"0 {names[3][1]}"
    if working:
        qualifier = WORKING.get(language, WORKING["en"])
        parts[0][1] = qualifier + parts[0][1] if language != "id" else parts[0][1] + qualifier
    return " ".join(" ".join(p) for p in parts)


def local_time(moment: datetime, zone: ZoneInfo, language: str) -> str:
    """'Selasa, 24 November 2026 pukul 14.00 WIB' / 'Tuesday, 24 November 2026 at 14:00 WIB'."""
    local = moment.astimezone(zone)
    day = local_date(local.date(), language)
    if language == "id":
        return f"{day} pukul {local:%H.%M} {local.tzname()}"
    return f"{day} at {local:%H:%M} {local.tzname()}"


def local_date(day: date, language: str) -> str:
    """'Selasa, 24 November 2026' / 'Tuesday, 24 November 2026'."""
    return babel.dates.format_date(day, "EEEE, d MMMM y", locale=_locale(language))


def _locale(language: str) -> str:
    return language if language in UNITS else "en"


def clock_time(moment: datetime, zone: ZoneInfo, language: str) -> str:
    """'14.00 WIB' / '14:00 WIB': a time on a day already named."""
    local = moment.astimezone(zone)
    return f"{local:%H.%M} {local.tzname()}" if language == "id" else \
        f"{local:%H:%M} {local.tzname()}"


def parse_hours(text: str) -> tuple[Span, ...]:
    """'08:00-12:00,13:00-17:00' as spans; ValueError naming what is wrong."""
    spans: list[Span] = []
    for part in str(text).split(","):
        start, dash, end = part.strip().partition("-")
        if not dash:
            raise ValueError(f"{part.strip()!r} is not a span like 08:00-12:00")
        span = (_minutes(start), _minutes(end))
        if span[0] >= span[1]:
            raise ValueError(f"{part.strip()!r} ends before it starts")
        if spans and span[0] < spans[-1][1]:
            raise ValueError(f"{part.strip()!r} overlaps or comes before the span before it")
        spans.append(span)
    return tuple(spans)


def _minutes(text: str) -> int:
    try:
        parsed = time.fromisoformat(text.strip()) if text.strip() != "24:00" else None
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a time like 08:00") from None
    return DAY_MINUTES if parsed is None else parsed.hour * 60 + parsed.minute
