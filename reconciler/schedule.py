"""The reconcile schedule (APScheduler 3.x): an hourly report and a daily repair by default,
cron expressions from settings; coalescing, one instance at a time, a misfire grace; across
replicas one run at a time through the lease lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from loguru import logger

from engine.app import Engine
from engine.exceptions import ConfigError
from reconciler.lock import LeaseLock
from reconciler.reports import save
from reconciler.run import Mode, Reconciler, ReconcileResult

LOCK_NAME = "reconcile"


def reconcile_lock(engine: Engine) -> LeaseLock:
    """The lease every reconcile run takes, whoever starts it (schedule, Lambda, HTTP)."""
    settings = engine.settings
    return LeaseLock(
        engine.clients.dynamodb, settings.leases_table, LOCK_NAME, settings.reconcile.lock_ttl_s
    )


def run_and_save(
    engine: Engine,
    mode: Mode,
    types: Iterable[str] | None = None,
    lock: LeaseLock | None = None,
) -> tuple[ReconcileResult, dict[str, str]] | None:
    """A locked reconcile that saves its report: the result and where the report went, or
    None when another run holds the lease. The schedule, the Lambda and the HTTP route all
    run through here."""
    with (lock or reconcile_lock(engine)).held() as mine:
        if not mine:
            return None
        result = Reconciler(engine).run(mode, types)
        return result, save(engine, result, engine.settings.reconcile.report_dir)


def locked_run(engine: Engine, mode: Mode, lock: LeaseLock | None = None) -> ReconcileResult | None:
    """One scheduled run, if this replica gets the lock; the report is saved."""
    saved = run_and_save(engine, mode, lock=lock)
    if saved is None:
        return None
    result, where = saved
    logger.bind(op="reconcile.scheduled", mode=mode, **where).info(
        "scheduled {}: drift {}, remaining {}", mode, result.drift, result.remaining()
    )
    return result


_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def crontab_days(field: str) -> str:
    """A crontab day-of-week field (0 and 7 = Sunday; names, numbers, or both as in `mon,3`)
    as APScheduler day names.

    APScheduler 3 numbers days from Monday = 0, so numbers are translated, not passed on.
    """
    if field == "*":
        return field
    days: set[int] = set()
    for token in field.split(","):
        rng, _, step_text = token.partition("/")
        step = int(step_text) if step_text else 1
        if rng == "*":
            lo, hi = 0, 6
        elif "-" in rng:
            lo, hi = (_day_number(part) for part in rng.split("-", 1))
        else:
            lo = hi = _day_number(rng)
            if step_text:
                hi = 6
        if not (0 <= lo <= 7 and 0 <= hi <= 7 and lo <= hi and step >= 1):
            raise ValueError(f"day of week {token!r} is out of range 0-7")
        days.update(day % 7 for day in range(lo, hi + 1, step))
    return ",".join(_DAY_NAMES[day] for day in sorted(days))


def _day_number(text: str) -> int:
    """`3` or `wed` (any case) → 3, crontab's numbering."""
    name = text.strip().lower()[:3]
    if name in _DAY_NAMES and text.strip().isalpha():
        return _DAY_NAMES.index(name)
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"day of week {text!r} is neither 0-7 nor a day name") from None


def _trigger(expression: str, setting: str) -> CronTrigger:
    try:
        fields = expression.split()
        if len(fields) != 5:
            raise ValueError(f"a crontab expression has 5 fields, got {len(fields)}")
        minute, hour, day, month, day_of_week = fields
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_days(day_of_week),
            timezone="UTC",
        )
    except ValueError as exc:
        raise ConfigError(f"invalid setting {setting}: {expression!r}: {exc}") from exc


def build(
    engine: Engine, blocking: bool = False, run: Callable[[Engine, Mode], Any] = locked_run
) -> BlockingScheduler | BackgroundScheduler:
    settings = engine.settings
    scheduler_cls = BlockingScheduler if blocking else BackgroundScheduler
    scheduler = scheduler_cls(
        timezone="UTC",
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.reconcile.misfire_grace_s,
        },
    )
    for mode, expression, setting in (
        (
            "report",
            settings.reconcile.report_cron,
            "reconcile.report_cron [DOCSYNC_RECONCILE_REPORT_CRON]",
        ),
        (
            "repair",
            settings.reconcile.repair_cron,
            "reconcile.repair_cron [DOCSYNC_RECONCILE_REPAIR_CRON]",
        ),
    ):
        if expression.strip():
            scheduler.add_job(
                run, _trigger(expression, setting), args=[engine, mode], id=f"reconcile-{mode}"
            )
    return scheduler
