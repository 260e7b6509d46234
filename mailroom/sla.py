"""Due times and how they are told to people: durations in words, times in local time."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

UNITS = {
    "en": (("week", "weeks"), ("day", "days"), ("hour", "hours"), ("minute", "minutes")),
    "id": (("minggu", "minggu"), ("hari", "hari"), ("jam", "jam"), ("menit", "menit")),
}
DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
}
MONTHS = {
    "en": "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(),
    "id": "Jan Feb Mar Apr Mei Jun Jul Agu Sep Okt Nov Des".split(),
}


def due_at(start: datetime, target: timedelta) -> datetime:
    """When a target that starts at `start` falls due (calendar time)."""
    return start + target


def in_words(duration: timedelta, language: str) -> str:
    """'1 day 4 hours' / '1 hari 4 jam'."""
    minutes = int(duration.total_seconds() // 60)
    amounts = (minutes // 10080, minutes % 10080 // 1440, minutes % 1440 // 60, minutes % 60)
    names = UNITS.get(language, UNITS["en"])
    parts = [f"{n} {name[n != 1]}" for n, name in zip(amounts, names, strict=True) if n]
    return " ".join(parts) or f"0 {names[3][1]}"


def local_time(moment: datetime, zone: ZoneInfo, language: str) -> str:
    """'Senin, 23 Nov 2026 13:15 WIB' in the service time zone and the reader's language."""
    local = moment.astimezone(zone)
    day = DAYS.get(language, DAYS["en"])[local.weekday()]
    month = MONTHS.get(language, MONTHS["en"])[local.month - 1]
    return f"{day}, {local.day} {month} {local.year} {local:%H:%M} {local.tzname()}"
