"""Reminder times: the next local reminder outside quiet hours, as a UTC instant."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.engine._terms import ReminderTime


def zone(name: str | None, default: str) -> ZoneInfo:
    """The client's time zone, falling back to the practice default."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def parse_hhmm(text: str) -> time | None:
    """``"19:05"`` → 19:05; anything else → None."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not (hours.isdigit() and minutes.isdigit()) or len(minutes) != 2:
        return None
    h, m = int(hours), int(minutes)
    return time(h, m) if 0 <= h < 24 and 0 <= m < 60 else None


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """Whether a local time falls in quiet hours (which may wrap past midnight)."""
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def next_reminder(
    reminders: list[ReminderTime],
    tz: ZoneInfo,
    now: datetime,
    quiet: tuple[time, time],
) -> datetime | None:
    """The earliest reminder after ``now`` that is not in quiet hours, in UTC."""
    local_now = now.astimezone(tz)
    best: datetime | None = None
    for reminder in reminders:
        at = parse_hhmm(reminder.time)
        if at is None or in_quiet_hours(at, *quiet):
            continue
        for offset in range(8):
            day = (local_now + timedelta(days=offset)).date()
            if day.weekday() not in reminder.days:
                continue
            candidate = datetime.combine(day, at, tzinfo=tz)
            if candidate > local_now:
                utc = candidate.astimezone(UTC)
                best = utc if best is None or utc < best else best
                break
    return best
