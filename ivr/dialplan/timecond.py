"""Time conditions (business hours): weekdays, hours, dates and holidays in a time zone.

Pure: the caller passes "now" (an aware datetime); nothing here reads a clock.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS_RE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\Z")
_DATE_RE = re.compile(r"(?:(\d{4})-)?(\d{2})-(\d{2})\Z")


@dataclass(frozen=True)
class DateSpec:
    year: int | None  # None: every year
    month: int
    day: int

    def matches(self, d: date) -> bool:
        return (self.year is None or self.year == d.year) and self.month == d.month and self.day == d.day


@dataclass(frozen=True)
class TimeRule:
    days: frozenset[int] = frozenset()          # 0 = Monday; empty = any day
    hours: tuple[tuple[int, int], ...] = ()    # minute-of-day [start, end); empty = all day
    dates: tuple[DateSpec, ...] = ()           # empty = any date

    def matches(self, local: datetime) -> bool:
        if self.days and local.weekday() not in self.days:
            return False
        if self.dates and not any(d.matches(local.date()) for d in self.dates):
            return False
        if self.hours:
            minute = local.hour * 60 + local.minute
            return any(_in_range(minute, a, b) for a, b in self.hours)
        return True


def _in_range(minute: int, start: int, end: int) -> bool:
    if start <= end:
        return start <= minute < end
    return minute >= start or minute < end  # wraps midnight (22:00-06:00)


def parse_days(spec: str) -> frozenset[int]:
    """'mon-fri', 'sat,sun', 'mon-wed,fri' -> weekday numbers.  Raises ValueError."""
    out: set[int] = set()
    for part in spec.lower().replace(" ", "").split(","):
        if not part:
            raise ValueError(f"empty day in '{spec}'")
        ends = part.split("-")
        if len(ends) > 2 or any(e[:3] not in DAYS or len(e) < 3 for e in ends):
            raise ValueError(f"'{part}' is not a day or day range (mon..sun)")
        a, b = DAYS.index(ends[0][:3]), DAYS.index(ends[-1][:3])
        out.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(out)


def parse_hours(spec: str) -> tuple[int, int]:
    """'09:00-17:00' -> (540, 1020); '24:00' is allowed as an end.  Raises ValueError."""
    m = _HOURS_RE.match(spec.strip())
    if not m:
        raise ValueError(f"'{spec}' is not an hours range like 09:00-17:00")
    h1, m1, h2, m2 = map(int, m.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"'{spec}' has an impossible time")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"'{spec}' is an empty range")
    return start, end


def parse_date(spec: str) -> DateSpec:
    """'2025-12-25' (that day) or '12-25' (every year).  Raises ValueError."""
    m = _DATE_RE.match(spec.strip())
    if not m:
        raise ValueError(f"'{spec}' is not a date (YYYY-MM-DD, or MM-DD for every year)")
    year = int(m.group(1)) if m.group(1) else None
    month, day = int(m.group(2)), int(m.group(3))
    try:
        date(year or 2000, month, day)  # 2000 is a leap year: 02-29 is fine every year
    except ValueError:
        raise ValueError(f"'{spec}' is not a real date") from None
    return DateSpec(year, month, day)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{name}'") from None


def is_open(rules: tuple[TimeRule, ...], holidays: tuple[DateSpec, ...], now: datetime,
            tz: ZoneInfo) -> bool:
    """True if ``now`` (aware) falls in any rule and on no holiday, in time zone ``tz``."""
    local = now.astimezone(tz)
    if any(h.matches(local.date()) for h in holidays):
        return False
    return any(r.matches(local) for r in rules) if rules else True


__all__ = ["TimeRule", "DateSpec", "parse_days", "parse_hours", "parse_date", "zone", "is_open"]
