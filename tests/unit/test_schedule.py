"""spec.schedule (issue 15, item 2): running windows in time zones, across daylight-saving changes and
overnight; what the core does inside and outside them; when the shell looks again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from together_operator import schedule
from together_operator.core import CreateEndpoint, EventType, Found, NotCreated, Plan, Reason, plan
from together_operator.resource import ScheduleSpec, ScheduleStatus

from .builders import ENDPOINT_ID, condition, endpoint, inputs, patch_body, status, verdict
from .fakes import ShellBed

REPO_ROOT = Path(__file__).resolve().parents[2]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def at(running: list[str], now: str, time_zone: str = "UTC") -> ScheduleStatus:
    parsed = schedule.parse(ScheduleSpec(time_zone=time_zone, running=tuple(running)))
    return schedule.evaluate(parsed, utc(now))


# --- windows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("running", "time_zone", "now", "active", "next_transition"),
    [
        # Wednesday 2025-03-05: Berlin is UTC+1 in winter.
        (["Mon-Fri 08:00-20:00"], "Europe/Berlin", "2025-03-05T07:00", True, "2025-03-05T19:00"),
        (["Mon-Fri 08:00-20:00"], "Europe/Berlin", "2025-03-05T06:59", False, "2025-03-05T07:00"),
        (["Mon-Fri 08:00-20:00"], "Europe/Berlin", "2025-03-05T19:00", False, "2025-03-06T07:00"),
        # Friday evening: the next window is Monday's.
        (["Mon-Fri 08:00-20:00"], "Europe/Berlin", "2025-03-07T19:30", False, "2025-03-10T07:00"),
        # One instant, three zones: office hours in New York (UTC-5) but not in Tokyo (UTC+9).
        (["Mon-Fri 09:00-17:00"], "America/New_York", "2025-03-05T15:00", True, "2025-03-05T22:00"),
        (["Mon-Fri 09:00-17:00"], "Asia/Tokyo", "2025-03-05T15:00", False, "2025-03-06T00:00"),
        (["Mon-Fri 09:00-17:00"], "UTC", "2025-03-05T15:00", True, "2025-03-05T17:00"),
        # Spring forward in Berlin (Sunday 2025-03-30, 02:00 -> 03:00): Sunday 08:00 is CEST, UTC+2.
        (["Mon-Sun 08:00-20:00"], "Europe/Berlin", "2025-03-29T20:00", False, "2025-03-30T06:00"),
        (["Mon-Sun 08:00-20:00"], "Europe/Berlin", "2025-03-30T06:00", True, "2025-03-30T18:00"),
        # A window starting in the skipped hour opens when the clocks jump (02:30 CET = 03:30 CEST).
        (["Sun 02:30-04:00"], "Europe/Berlin", "2025-03-30T00:30", False, "2025-03-30T01:30"),
        (["Sun 02:30-04:00"], "Europe/Berlin", "2025-03-30T01:30", True, "2025-03-30T02:00"),
        # Fall back in Berlin (Sunday 2025-10-26, 03:00 -> 02:00): Sunday 08:00 is CET again, UTC+1.
        (["Mon-Sun 08:00-20:00"], "Europe/Berlin", "2025-10-25T19:00", False, "2025-10-26T07:00"),
        # The night of the change is an hour longer: 22:00 CEST to 06:00 CET is nine hours.
        (["Mon-Sun 22:00-06:00"], "Europe/Berlin", "2025-10-25T20:00", True, "2025-10-26T05:00"),
        # Spring forward in New York (Sunday 2025-03-09): 09:00 is EDT, UTC-4.
        (["Sun 09:00-10:00"], "America/New_York", "2025-03-09T06:00", False, "2025-03-09T13:00"),
        # Overnight: Friday's night runs into Saturday morning; Sunday night has none.
        (["Mon-Fri 22:00-06:00"], "UTC", "2025-03-01T05:00", True, "2025-03-01T06:00"),
        (["Mon-Fri 22:00-06:00"], "UTC", "2025-03-01T07:00", False, "2025-03-03T22:00"),
        (["Mon-Fri 22:00-06:00"], "UTC", "2025-03-02T23:00", False, "2025-03-03T22:00"),
        (["Mon-Fri 22:00-06:00"], "UTC", "2025-03-04T03:00", True, "2025-03-04T06:00"),
        # A day range that wraps round the week.
        (["Fri-Mon 10:00-12:00"], "UTC", "2025-03-02T11:00", True, "2025-03-02T12:00"),
        (["Fri-Mon 10:00-12:00"], "UTC", "2025-03-04T11:00", False, "2025-03-07T10:00"),
        # 24:00 ends at midnight; touching windows merge into one.
        (["Sat 18:00-24:00", "Sun 00:00-02:00"], "UTC", "2025-03-01T23:59", True, "2025-03-02T02:00"),
        (["Mon-Sun 00:00-24:00"], "UTC", "2025-03-01T12:00", True, None),
        (["Mon-Sun 00:00-12:00", "Mon-Sun 12:00-24:00"], "Europe/Berlin", "2025-03-30T01:30", True, None),
        # Several windows: the nearest boundary counts.
        (
            ["Mon-Fri 08:00-12:00", "Mon-Fri 13:00-17:00"],
            "UTC",
            "2025-03-05T12:30",
            False,
            "2025-03-05T13:00",
        ),
    ],
)
def test_a_running_window_says_whether_it_is_open_and_when_that_changes(
    running: list[str], time_zone: str, now: str, active: bool, next_transition: str | None
) -> None:
    expected = ScheduleStatus(
        active=active, next_transition=utc(next_transition) if next_transition else None
    )

    assert at(running, now, time_zone) == expected


@pytest.mark.parametrize(
    ("window", "error"),
    [
        ("Mon-Fri 8:00-20:00", "is not like 'Mon-Fri 08:00-20:00'"),
        ("Monday 08:00-20:00", "is not like"),
        ("Mon-Fri 08:00-24:01", "is not like"),
        ("Mon-Fri 25:00-26:00", "is not like"),
        ("Mon-Fri 08:00-20:00 Europe/Berlin", "is not like"),
        ("Mon-Fri 08:00-08:00", "starts when it ends"),
    ],
)
def test_a_malformed_window_is_refused_with_what_is_wrong(window: str, error: str) -> None:
    with pytest.raises(schedule.ScheduleError, match=error):
        schedule.parse_window(window)


def test_an_unknown_time_zone_is_refused_by_name() -> None:
    with pytest.raises(schedule.ScheduleError, match="'Mars/Olympus' is not a known IANA time zone"):
        schedule.parse(ScheduleSpec(time_zone="Mars/Olympus", running=("Mon-Fri 08:00-20:00",)))


@pytest.mark.parametrize("crd", ["crds", "charts/together-operator/crds"])
def test_admission_checks_windows_with_the_parser_s_pattern(crd: str) -> None:
    document = yaml.safe_load((REPO_ROOT / crd / "togetherendpoints.together.ai.yaml").read_text())
    spec = document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert (
        spec["properties"]["schedule"]["properties"]["running"]["items"]["pattern"] == schedule.WINDOW_PATTERN
    )


# --- the core ---------------------------------------------------------------------------------------

OFFICE_HOURS = {"time_zone": "Europe/Berlin", "running": ["Mon-Fri 08:00-20:00"]}
SATURDAY = utc("2025-03-01T12:00")  # outside
WEDNESDAY = utc("2025-03-05T10:00")  # inside (11:00 in Berlin)


def test_outside_every_window_a_running_endpoint_is_stopped() -> None:
    result = plan(inputs(schedule=OFFICE_HOURS, now=SATURDAY, remote=None))

    assert patch_body(result) == {"state": "STOPPED"}
    assert verdict(result)["Reconciling"] == ("True", Reason.STOPPING)


def test_outside_every_window_a_stopped_endpoint_is_ready_as_scheduled() -> None:
    result = plan(inputs(schedule=OFFICE_HOURS, now=SATURDAY, remote=Found(endpoint(state="STOPPED"))))

    assert result.actions == ()
    assert verdict(result)["Ready"] == ("True", Reason.SCHEDULED)
    assert "the next one opens at 2025-03-03T07:00:00+00:00" in condition(result, "Ready").message
    assert result.status.schedule == ScheduleStatus(active=False, next_transition=utc("2025-03-03T07:00"))


def test_inside_a_window_a_stopped_endpoint_is_started() -> None:
    result = plan(inputs(schedule=OFFICE_HOURS, now=WEDNESDAY, remote=Found(endpoint(state="STOPPED"))))

    assert patch_body(result) == {"state": "STARTED"}
    assert result.status.schedule == ScheduleStatus(active=True, next_transition=utc("2025-03-05T19:00"))


def test_a_stopped_spec_stays_stopped_inside_a_window() -> None:
    result = plan(
        inputs(schedule=OFFICE_HOURS, state="Stopped", now=WEDNESDAY, remote=Found(endpoint(state="STOPPED")))
    )

    assert result.actions == ()
    assert verdict(result)["Ready"] == ("True", Reason.STOPPED)


def test_a_create_outside_every_window_creates_the_endpoint_stopped() -> None:
    result = plan(inputs(schedule=OFFICE_HOURS, now=SATURDAY, remote=NotCreated()))

    [action] = result.actions
    assert isinstance(action, CreateEndpoint)
    assert action.request.state == "STOPPED"


def test_an_unknown_time_zone_stalls_with_the_parse_error_and_changes_nothing() -> None:
    bad = {"time_zone": "Europe/Atlantis", "running": ["Mon-Fri 08:00-20:00"]}

    result = plan(inputs(schedule=bad, now=WEDNESDAY, remote=None))

    assert result.actions == ()
    assert verdict(result)["Stalled"] == ("True", Reason.INVALID_SPEC)
    assert condition(result, "Stalled").message == (
        "spec.schedule: timeZone 'Europe/Atlantis' is not a known IANA time zone"
    )


def test_a_window_closing_and_opening_each_post_one_normal_event() -> None:
    inside = plan(
        inputs(schedule=OFFICE_HOURS, now=utc("2025-03-07T18:59"), remote=Found(endpoint(state="STARTED")))
    )
    closing = plan(
        inputs(schedule=OFFICE_HOURS, now=utc("2025-03-07T19:00"), previous=inside.status, remote=None)
    )
    still_closed = plan(
        inputs(
            schedule=OFFICE_HOURS,
            now=utc("2025-03-08T19:00"),
            previous=closing.status,
            remote=Found(endpoint(state="STOPPED")),
        )
    )
    opening = plan(
        inputs(
            schedule=OFFICE_HOURS,
            now=utc("2025-03-10T07:00"),
            previous=still_closed.status,
            remote=Found(endpoint(state="STOPPED")),
        )
    )

    def window_events(result: Plan) -> list[tuple[str, str]]:
        return [
            (e.type, e.reason)
            for e in result.events
            if e.reason in (Reason.RUNNING_WINDOW_OPENED, Reason.RUNNING_WINDOW_CLOSED)
        ]

    assert window_events(inside) == []  # no transition seen yet
    assert window_events(closing) == [(EventType.NORMAL, Reason.RUNNING_WINDOW_CLOSED)]
    assert window_events(still_closed) == []
    assert window_events(opening) == [(EventType.NORMAL, Reason.RUNNING_WINDOW_OPENED)]
    assert patch_body(opening) == {"state": "STARTED"}


def test_without_a_schedule_nothing_changes_and_no_schedule_status_is_written() -> None:
    result = plan(inputs(now=SATURDAY, remote=None, previous=status()))

    assert result.actions == ()
    assert result.status.schedule is None


# --- the shell --------------------------------------------------------------------------------------


async def test_the_next_reconcile_comes_when_the_window_closes() -> None:
    bed = ShellBed(endpoint(state="STARTED"))
    bed.clock.now = utc("2025-03-05T18:55")  # five minutes before 20:00 in Berlin
    body = bed.resource(
        spec={
            "model": endpoint().model,
            "hardware": endpoint().hardware,
            "endpointId": ENDPOINT_ID,
            "schedule": {"timeZone": "Europe/Berlin", "running": ["Mon-Fri 08:00-20:00"]},
        }
    )

    delay = await bed.reconcile(body)

    assert delay == 300
