"""The worker's timetable: which sync jobs exist, their triggers, and how long "one interval" is.

Nothing here starts a scheduler; ``jobs.serve`` does. Triggers are APScheduler 3.x objects so that
tests can ask them for fire times with explicit ``previous``/``now`` values.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable
from zoneinfo import ZoneInfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from connector.errors import ConfigError

from jobs.config import AppConfig, JobSchedule
from jobs.sync.cycle import JOBS

# The sync jobs the worker schedules, by name: the very table ``run --job NAME`` runs from, so a
# job added there (with its ``[schedule.NAME]`` table) is scheduled too. Each function takes
# (config, *, webitel, creatio, store, dry_run, clock, progress, stop_requested, heartbeat) and
# returns a RunReport.
SYNC_JOBS: dict[str, Callable] = JOBS

# Standard crontab numbers days 0-7 from Sunday; APScheduler 3.x numbers them from Monday
# (its issue 286), so numbers are rewritten as names before the expression reaches it.
_CRON_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# Windows searched backwards for the last two fire times of a cron trigger: an hour covers
# minute-level schedules cheaply, a year covers the sparsest ones.
_LOOKBACK = (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=8), dt.timedelta(days=63),
             dt.timedelta(days=400))
_MAX_STEPS = 2000


def job_id(name: str) -> str:
    """The scheduler's id of a sync job; fixed, so a rebuilt schedule replaces rather than adds."""
    return f"sync-{name}"


def schedule_timezone(config: AppConfig) -> dt.tzinfo:
    """The zone cron expressions are read in: ``[schedule] timezone``, else the machine's."""
    if config.schedule.timezone:
        return ZoneInfo(config.schedule.timezone)
    from tzlocal import get_localzone

    return get_localzone()


def crontab_weekdays(field: str) -> str:
    """Rewrite a crontab day-of-week field so that APScheduler 3.x reads it as cron does.

    ``0``/``7`` is Sunday in crontab but would be Monday/invalid in APScheduler 3.x. Numbers,
    ranges and steps become explicit day names (``1-5`` -> ``mon,tue,wed,thu,fri``); names and
    ``*`` pass through unchanged.

    Raises:
        ValueError: A number outside 0-7 or a malformed item.
    """
    out: list[str] = []
    for item in field.split(","):
        base, _, step_text = item.partition("/")
        if base == "*" and not step_text or not any(ch.isdigit() for ch in base) and base != "*":
            out.append(item)
            continue
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = 0, 6
        else:
            first_text, _, last_text = base.partition("-")
            first = int(first_text)
            last = int(last_text) if last_text else (7 if step_text else first)
        if not (0 <= first <= 7 and 0 <= last <= 7 and first <= last and step >= 1):
            raise ValueError(f"day of week {item!r} is not within 0-7 (0 and 7 are Sunday)")
        days = {_CRON_DAYS[day % 7] for day in range(first, last + 1, step)}
        out.extend(day for day in _CRON_DAYS if day in days)
    return ",".join(dict.fromkeys(out))


def make_trigger(schedule: JobSchedule, *, timezone: dt.tzinfo, name: str) -> BaseTrigger:
    """The trigger for one job's ``[schedule.NAME]`` table.

    Raises:
        ConfigError: The cron expression cannot be used (exit code 2 from the command line).
    """
    if schedule.every_minutes is not None:
        return IntervalTrigger(seconds=schedule.every_minutes * 60, timezone=timezone)
    fields = (schedule.cron or "").split()
    try:
        if len(fields) != 5:
            raise ValueError(f"expected five fields, got {len(fields)}")
        fields[4] = crontab_weekdays(fields[4])
        return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)
    except ValueError as exc:
        raise ConfigError(f"schedule.{name}.cron: {schedule.cron!r} is not a usable cron expression: "
                          f"{exc}") from None


def make_triggers(config: AppConfig) -> dict[str, BaseTrigger]:
    """One trigger per sync job the worker can run, validated (see ``make_trigger``)."""
    timezone = schedule_timezone(config)
    return {name: make_trigger(getattr(config.schedule, name), timezone=timezone, name=name)
            for name in SYNC_JOBS}


def interval_s(trigger: BaseTrigger, now: dt.datetime) -> float:
    """How long "one interval" of a trigger is, in seconds, as of ``now``.

    For an interval trigger its fixed length; for a cron trigger the gap between its last two fire
    times before ``now`` (or, with fewer than two in the past year, between its next two).
    """
    if isinstance(trigger, IntervalTrigger):
        return trigger.interval_length
    for window in _LOOKBACK:
        fires = _fire_times(trigger, now - window, now)
        if len(fires) >= 2:
            return (fires[-1] - fires[-2]).total_seconds()
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + dt.timedelta(microseconds=1)) if first else None
    if first is None or second is None:
        return float("inf")  # a trigger that never fires again has no interval to be late by
    return (second - first).total_seconds()


def _fire_times(trigger: BaseTrigger, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    fires: list[dt.datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end and len(fires) < _MAX_STEPS:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + dt.timedelta(microseconds=1))
    return fires[-2:] if len(fires) < _MAX_STEPS else []
