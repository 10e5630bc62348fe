"""`spec.schedule`: when a `Started` endpoint may run. Pure functions of the spec and a given moment.

Windows use kube-downscaler's uptime format without its time zone (that is `timeZone`, once for all):
`Mon-Fri 08:00-20:00` (a weekday range, inclusive, may wrap: `Fri-Mon`), or one day, `Sat 10:00-14:00`.
A window whose end is not after its start runs overnight into the next day (`Mon-Fri 22:00-06:00` runs
from Monday 22:00 to Saturday 06:00, with the days' gaps); `24:00` ends at midnight. Times are wall-clock
times of the zone, so a window keeps its hours across daylight-saving changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from together_operator.resource import ScheduleSpec, ScheduleStatus

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY = "(" + "|".join(DAYS) + ")"
WINDOW_PATTERN = rf"^{_DAY}(-{_DAY})? (([01][0-9]|2[0-3]):[0-5][0-9])-(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
"""The format admission checks (the CRD's pattern); the parser below says what is wrong in words."""
_WINDOW = re.compile(WINDOW_PATTERN)
# Far enough ahead to find the next transition of any weekly schedule.
_HORIZON_DAYS = 8


class ScheduleError(ValueError):
    """A schedule that cannot be evaluated; the message names the part at fault."""


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    """Weekdays (Monday 0) on which the window starts."""
    start: timedelta
    """After midnight, local wall-clock time."""
    end: timedelta
    """After midnight of the start day; past 24 h for an overnight window."""


@dataclass(frozen=True)
class Schedule:
    zone: ZoneInfo
    windows: tuple[Window, ...]


def parse_window(text: str) -> Window:
    match = _WINDOW.match(text)
    if match is None:
        raise ScheduleError(f"window {text!r} is not like 'Mon-Fri 08:00-20:00' (days, then HH:MM-HH:MM)")
    first, _, last, start_text, _, end_text, _ = match.groups()
    start_day = DAYS.index(first)
    span = (DAYS.index(last) - start_day) % 7 if last is not None else 0
    start, end = _clock_time(start_text), _clock_time(end_text)
    if start == end:
        raise ScheduleError(f"window {text!r} starts when it ends")
    if end <= start:
        end += timedelta(days=1)
    return Window(frozenset((start_day + i) % 7 for i in range(span + 1)), start, end)


def parse(spec: ScheduleSpec) -> Schedule:
    try:
        zone = ZoneInfo(spec.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ScheduleError(f"timeZone {spec.time_zone!r} is not a known IANA time zone") from error
    return Schedule(zone, tuple(parse_window(text) for text in spec.running))


def _clock_time(text: str) -> timedelta:
    hours, minutes = text.split(":")
    return timedelta(hours=int(hours), minutes=int(minutes))


def _intervals(schedule: Schedule, around: datetime) -> list[tuple[datetime, datetime]]:
    """The running intervals (naive local wall-clock times) from the day before `around` to the
    horizon, overlapping ones merged."""
    midnight = around.replace(hour=0, minute=0, second=0, microsecond=0)
    found = sorted(
        (day + window.start, day + window.end)
        for offset in range(-1, _HORIZON_DAYS)
        for day in (midnight + timedelta(days=offset),)
        for window in schedule.windows
        if day.weekday() in window.days
    )
    merged: list[tuple[datetime, datetime]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def evaluate(schedule: Schedule, now: datetime) -> ScheduleStatus:
    """Whether `now` is in a running window, and when that next changes (None: never, as far as a week
    shows)."""
    local = now.astimezone(schedule.zone).replace(tzinfo=None)
    intervals = _intervals(schedule, local)
    current = next(((s, e) for s, e in intervals if s <= local < e), None)
    if current is not None:
        # Merged up to the horizon: it never ends (`Mon-Sun 00:00-24:00`).
        change = None if current == intervals[-1] else current[1]
        return ScheduleStatus(active=True, next_transition=_instant(change, schedule.zone))
    upcoming = next((s for s, _ in intervals if s > local), None)
    return ScheduleStatus(active=False, next_transition=_instant(upcoming, schedule.zone))


def _instant(wall: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A local wall-clock time as a UTC instant; a time skipped by a daylight-saving change (02:30 on
    the spring-forward day) falls as far after the change as it was after the last valid time."""
    if wall is None:
        return None
    return wall.replace(tzinfo=zone).astimezone(UTC)


def status_of(spec: ScheduleSpec | None, now: datetime) -> ScheduleStatus | ScheduleError | None:
    """The schedule's state at `now`; None without a schedule (always running)."""
    if spec is None:
        return None
    try:
        return evaluate(parse(spec), now)
    except ScheduleError as error:
        return error


def seconds_until_transition(status: ScheduleStatus | None, now: datetime, otherwise: float) -> float:
    """`otherwise`, or less so the next reconcile comes as a window opens or closes."""
    if status is None or status.next_transition is None:
        return otherwise
    return max(0.0, min(otherwise, (status.next_transition - now).total_seconds()))
