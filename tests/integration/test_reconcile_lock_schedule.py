"""One reconcile at a time across replicas (reconciler/lock.py) and the schedule
(reconciler/schedule.py), over HTTP against the session's moto server.

The lease lives in the leases table: taken with a conditional write, renewed while held,
released at the end, taken over once a dead holder's lease expires.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobEvent

from engine.app import Engine
from engine.documents import parse_document
from engine.exceptions import ConfigError
from engine.local_moto import EmbeddedMoto
from engine.settings import Settings
from reconciler.lock import LeaseLock
from reconciler.reports import history, save
from reconciler.run import Reconciler, ReconcileResult
from reconciler.schedule import LOCK_NAME, build, locked_run
from tests.conftest import make_settings
from tests.integration.test_listener_convergence import body

ROOT = Path(__file__).resolve().parents[2]
REPORTS = "_docsync/reports/"


def lock(engine: Engine, ttl_s: float, name: str = "test-lock") -> LeaseLock:
    return LeaseLock(engine.clients.dynamodb, engine.settings.leases_table, name, ttl_s)


def lease_item(engine: Engine, name: str) -> dict[str, Any] | None:
    response = engine.clients.dynamodb.get_item(
        TableName=engine.settings.leases_table,
        Key={"lease_key": {"S": name}},
        ConsistentRead=True,
    )
    item = response.get("Item")
    if item is None:
        return None
    return {"owner": item["owner"]["S"], "expires": float(item["expires"]["N"])}


def report_keys(engine: Engine) -> list[str]:
    return sorted(info.key for info in engine.objects.list(REPORTS))


# -- LeaseLock -------------------------------------------------------------------------------


def test_two_locks_on_one_name_exactly_one_acquires(engine: Engine) -> None:
    a, b = lock(engine, 30), lock(engine, 30)
    assert a.owner != b.owner
    assert a.try_acquire() is True
    assert b.try_acquire() is False
    assert a.try_acquire() is True  # re-acquiring your own lease renews it
    assert b.try_acquire() is False
    assert lease_item(engine, "test-lock")["owner"] == a.owner  # type: ignore[index]
    # Another name is another lock.
    assert lock(engine, 30, "other").try_acquire() is True


def test_two_locks_racing_from_threads_exactly_one_acquires(engine: Engine) -> None:
    locks = [lock(engine, 30) for _ in range(6)]
    barrier = threading.Barrier(len(locks))
    got: list[bool] = [False] * len(locks)

    def take(n: int) -> None:
        barrier.wait()
        got[n] = locks[n].try_acquire()

    threads = [threading.Thread(target=take, args=(n,)) for n in range(len(locks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(got) == 1
    winner = locks[got.index(True)]
    assert lease_item(engine, "test-lock")["owner"] == winner.owner  # type: ignore[index]


def test_renewal_keeps_the_lease_past_its_ttl_while_held(engine: Engine) -> None:
    holder, other = lock(engine, 1.5), lock(engine, 1.5)
    with holder.held() as mine:
        assert mine is True
        first = lease_item(engine, "test-lock")
        assert first is not None and first["owner"] == holder.owner
        deadline = time.time() + 4.0  # well past the 1.5 s TTL
        while time.time() < deadline:
            assert other.try_acquire() is False
            time.sleep(0.25)
        later = lease_item(engine, "test-lock")
        assert later is not None and later["owner"] == holder.owner
        assert later["expires"] > first["expires"] + 2.0  # renewed, more than once
        assert later["expires"] > time.time()
        with other.held() as theirs:
            assert theirs is False  # the context manager says so too, and does nothing
    # Released at the end: gone from the table, and the other one gets in at once.
    assert lease_item(engine, "test-lock") is None
    assert other.try_acquire() is True


def test_release_lets_the_other_in(engine: Engine) -> None:
    a, b = lock(engine, 60), lock(engine, 60)
    assert a.try_acquire()
    assert not b.try_acquire()
    b.release()  # not the holder: changes nothing
    assert lease_item(engine, "test-lock")["owner"] == a.owner  # type: ignore[index]
    a.release()
    assert lease_item(engine, "test-lock") is None
    assert b.try_acquire()
    a.release()  # releasing twice (the lease is no longer ours) is harmless
    assert lease_item(engine, "test-lock")["owner"] == b.owner  # type: ignore[index]


def test_expiry_lets_another_take_over(engine: Engine) -> None:
    """The clock is frozen and moved by hand: a stall of this machine between two calls
    cannot expire the lease early."""
    a, b = lock(engine, 1.0), lock(engine, 1.0)
    with time_machine.travel(datetime.now(UTC), tick=False) as clock:
        assert a.try_acquire()  # and never renewed: a dead holder
        clock.shift(timedelta(seconds=0.9))
        assert not b.try_acquire()
        clock.shift(timedelta(seconds=0.2))
        assert b.try_acquire()
    assert lease_item(engine, "test-lock")["owner"] == b.owner  # type: ignore[index]
    # The old holder wakes up: it cannot take the lease back, nor release the new holder's.
    assert not a.try_acquire()
    a.release()
    assert lease_item(engine, "test-lock")["owner"] == b.owner  # type: ignore[index]


def test_a_holder_that_lost_its_lease_stops_renewing_and_leaves_the_new_one(
    engine: Engine,
) -> None:
    """A holder paused past its TTL (GC, a stalled VM) finds its lease taken: its renewal
    stops, and its release at the end does not delete the new holder's lease."""
    holder = lock(engine, 0.6)
    with holder.held() as mine:
        assert mine
        # Someone took the lease over (as after an expiry): overwrite the item.
        engine.clients.dynamodb.put_item(
            TableName=engine.settings.leases_table,
            Item={
                "lease_key": {"S": "test-lock"},
                "owner": {"S": "someone-else"},
                "expires": {"N": f"{time.time() + 60:.3f}"},
            },
        )
        time.sleep(1.0)  # several renewal periods (ttl / 3)
        item = lease_item(engine, "test-lock")
        assert item is not None and item["owner"] == "someone-else"
    item = lease_item(engine, "test-lock")
    assert item is not None and item["owner"] == "someone-else"


HOLDER = """
import sys, time
from engine.app import Engine
from engine.settings import load_settings
from reconciler.lock import LeaseLock

settings = load_settings(None, endpoint_url=sys.argv[1], aws={"max_attempts": 2})
engine = Engine.build(settings)
lock = LeaseLock(engine.clients.dynamodb, settings.leases_table, sys.argv[2], float(sys.argv[3]))
with lock.held() as mine:
    print("held" if mine else "refused", lock.owner, flush=True)
    time.sleep(120)
"""


def test_lease_is_taken_over_after_its_holder_is_killed(
    engine: Engine, moto_server: EmbeddedMoto
) -> None:
    ttl = 3.0  # renewals every second: a loaded machine's stalls stay well inside it
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, moto_server.endpoint, LOCK_NAME, str(ttl)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("held "), (line, proc.stderr.read() if proc.stderr else "")
        holder_owner = line.split()[1]
        mine = lock(engine, 30, LOCK_NAME)
        # While the holder lives, its renewals (every ttl/3) keep it: several TTLs pass.
        deadline = time.time() + 2.5 * ttl
        while time.time() < deadline:
            assert mine.try_acquire() is False
            time.sleep(0.3)
        item = lease_item(engine, LOCK_NAME)
        assert item is not None and item["owner"] == holder_owner
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL

    # Dead: no more renewals. The lease holds until its last expiry, and not a moment longer.
    item = lease_item(engine, LOCK_NAME)
    assert item is not None and item["owner"] == holder_owner
    expires = item["expires"]
    assert expires > time.time(), "renewed less than a TTL ago"
    while time.time() < expires - 0.2:
        assert mine.try_acquire() is False
        time.sleep(0.1)
    time.sleep(max(0.0, expires - time.time()) + 0.1)
    assert mine.try_acquire() is True
    assert time.time() - expires < ttl  # taken over within one TTL of the expiry
    assert lease_item(engine, LOCK_NAME)["owner"] == mine.owner  # type: ignore[index]
    mine.release()


# -- locked_run ------------------------------------------------------------------------------


def seed(engine: Engine, n: int) -> None:
    for i in range(n):
        engine.pipeline.put(parse_document(body(f"{'ACZ'[i % 3]}-{i:03d}", i)))


def test_two_schedulers_one_lock_exactly_one_run(settings: Settings) -> None:
    first, second = Engine.build(settings), Engine.build(settings)
    seed(first, 6)
    barrier = threading.Barrier(2)
    results: list[ReconcileResult | None] = [None, None]
    errors: list[BaseException] = []

    def scheduled(n: int, engine: Engine) -> None:
        try:
            barrier.wait()
            results[n] = locked_run(engine, "report")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [
        threading.Thread(target=scheduled, args=(n, e)) for n, e in enumerate((first, second))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    ran = [r for r in results if r is not None]
    assert len(ran) == 1, results
    (result,) = ran
    assert result.mode == "report"
    assert result.counts["in_sync"] == 6
    assert result.drift == 0
    # Exactly one report (JSON and Markdown) landed in S3, and it is that run's.
    reports = report_keys(first)
    assert [k for k in reports if k.endswith(".json")] == [
        k.replace(".md", ".json") for k in reports if k.endswith(".md")
    ]
    assert len(reports) == 2, reports
    saved = json.loads(first.objects.get(next(k for k in reports if k.endswith(".json"))).body)
    assert saved["counts"]["in_sync"] == 6 and saved["mode"] == "report"
    # The lease was released: the next scheduled run (either replica) gets it.
    assert lease_item(first, LOCK_NAME) is None
    again = locked_run(second, "report")
    assert again is not None and again.counts["in_sync"] == 6


def test_locked_run_skips_while_another_replica_holds_the_lease(engine: Engine) -> None:
    other = lock(engine, 60, LOCK_NAME)
    assert other.try_acquire()
    assert locked_run(engine, "repair") is None
    assert report_keys(engine) == []
    other.release()
    result = locked_run(engine, "repair")
    assert result is not None and result.mode == "repair"
    assert len(report_keys(engine)) == 2


def test_two_runs_in_one_second_keep_both_reports(engine: Engine) -> None:
    """Runs 400 ms apart (say `--type change` then `--type announcement` from a script, or a
    run right after a short one) are two runs: `--history` must list both. Report names carry
    the start time to the second only, so the second run's report overwrites the first's."""
    seed(engine, 2)
    at = datetime.now(UTC).replace(microsecond=100_000)
    first = Reconciler(engine).run("report", types=["change"], now=at)
    second = Reconciler(engine).run(
        "report", types=["announcement"], now=at + timedelta(milliseconds=400)
    )
    save(engine, first, None)
    save(engine, second, None)
    runs = history(engine)
    assert [r["counts"]["in_sync"] for r in runs] == [0, 2], runs
    assert len([k for k in report_keys(engine) if k.endswith(".json")]) == 2


# -- the schedule ----------------------------------------------------------------------------


def engine_with(moto_server: EmbeddedMoto, **overrides: Any) -> Engine:
    return Engine.build(make_settings(moto_server.endpoint, **overrides))


def test_jobs_have_coalesce_one_instance_and_misfire_grace(moto_server: EmbeddedMoto) -> None:
    engine = engine_with(
        moto_server,
        reconcile={
            "report_cron": "* * * * *",
            "repair_cron": "*/5 2 * * mon",
            "misfire_grace_s": 42,
        },
    )
    scheduler = build(engine)
    scheduler.start(paused=True)  # jobs get their defaults and next run time, nothing runs
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"reconcile-report", "reconcile-repair"}
        for mode, job in (
            ("report", jobs["reconcile-report"]),
            ("repair", jobs["reconcile-repair"]),
        ):
            assert job.coalesce is True
            assert job.max_instances == 1
            assert job.misfire_grace_time == 42
            assert job.func is locked_run
            assert tuple(job.args) == (engine, mode)
        now = datetime.now(UTC)
        report_next = jobs["reconcile-report"].next_run_time
        assert report_next.second == 0 and now < report_next <= now + timedelta(seconds=61)
        repair_next = jobs["reconcile-repair"].next_run_time.astimezone(UTC)
        assert (repair_next.weekday(), repair_next.hour, repair_next.minute % 5) == (0, 2, 0)
    finally:
        scheduler.shutdown(wait=False)


def test_default_schedule_is_an_hourly_report_and_a_daily_repair(
    moto_server: EmbeddedMoto,
) -> None:
    engine = engine_with(moto_server)
    assert engine.settings.reconcile.misfire_grace_s == 300
    scheduler = build(engine)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"reconcile-report", "reconcile-repair"}
    start = datetime(2025, 1, 1, 10, 15, tzinfo=UTC)
    report = jobs["reconcile-report"].trigger
    repair = jobs["reconcile-repair"].trigger
    assert report.get_next_fire_time(None, start) == datetime(2025, 1, 1, 11, 0, tzinfo=UTC)
    assert repair.get_next_fire_time(None, start) == datetime(2025, 1, 2, 3, 30, tzinfo=UTC)


def test_numeric_day_of_week_follows_crontab(moto_server: EmbeddedMoto) -> None:
    """The settings are crontab expressions: day of week 0 and 7 are Sunday, 1 is Monday.
    APScheduler 3's `CronTrigger.from_crontab` numbers days from Monday = 0, so passing the
    expression through unchanged runs a weekly job a day late (and refuses 7)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)  # a Wednesday
    expected = {
        "0": {"Sunday"},
        "1": {"Monday"},
        "7": {"Sunday"},
        "1-5": {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"},
        "sat,sun": {"Saturday", "Sunday"},
        "mon,3": {"Monday", "Wednesday"},  # names and numbers mixed, as crontab allows
        "SUN-tue": {"Sunday", "Monday", "Tuesday"},
        "*/2": {"Sunday", "Tuesday", "Thursday", "Saturday"},
    }
    wrong: dict[str, object] = {}
    for field, days in expected.items():
        engine = engine_with(moto_server, reconcile={"repair_cron": f"30 3 * * {field}"})
        try:
            trigger = build(engine).get_job("reconcile-repair").trigger
        except ConfigError as exc:
            wrong[field] = f"ConfigError: {exc}"
            continue
        fired, at = set(), start
        for _ in range(14):
            at = trigger.get_next_fire_time(None, at + timedelta(seconds=1))
            fired.add(at.strftime("%A"))
        if fired != days:
            wrong[field] = sorted(fired)
    assert wrong == {}, f"day-of-week field → days it actually runs on: {wrong}"


@pytest.mark.parametrize(
    ("setting", "expression"),
    [
        ("reconcile.report_cron", "61 * * * *"),
        ("reconcile.report_cron", "every hour"),
        ("reconcile.repair_cron", "* * *"),
        ("reconcile.repair_cron", "0 25 * * *"),
        ("reconcile.repair_cron", "0 3 * * someday"),
    ],
)
def test_an_invalid_cron_is_a_config_error_naming_the_setting(
    moto_server: EmbeddedMoto, setting: str, expression: str
) -> None:
    engine = engine_with(moto_server, reconcile={setting.split(".")[1]: expression})
    with pytest.raises(ConfigError) as caught:
        build(engine)
    assert setting in str(caught.value)
    assert expression in str(caught.value)


@pytest.mark.parametrize(
    ("report", "repair", "jobs"),
    [
        ("", "30 3 * * *", {"reconcile-repair"}),
        ("0 * * * *", "", {"reconcile-report"}),
        ("  ", "", set()),
    ],
)
def test_an_empty_cron_disables_that_job(
    moto_server: EmbeddedMoto, report: str, repair: str, jobs: set[str]
) -> None:
    engine = engine_with(moto_server, reconcile={"report_cron": report, "repair_cron": repair})
    scheduler = build(engine)
    assert {job.id for job in scheduler.get_jobs()} == jobs


def test_a_fired_job_runs_locked_and_saves_its_report(
    engine: Engine, moto_server: EmbeddedMoto
) -> None:
    seed(engine, 3)
    scheduled = Engine.build(
        make_settings(
            moto_server.endpoint, reconcile={"report_cron": "* * * * *", "repair_cron": ""}
        )
    )
    scheduler = build(scheduled)
    scheduler.start()
    try:
        scheduler.get_job("reconcile-report").modify(next_run_time=datetime.now(UTC))
        deadline = time.time() + 30
        while time.time() < deadline and len(report_keys(engine)) < 2:
            time.sleep(0.2)
    finally:
        scheduler.shutdown(wait=True)
    reports = report_keys(engine)
    assert len(reports) == 2, reports
    saved = json.loads(engine.objects.get(next(k for k in reports if k.endswith(".json"))).body)
    assert (saved["mode"], saved["counts"]["in_sync"]) == ("report", 3)
    assert lease_item(engine, LOCK_NAME) is None


def test_one_instance_at_a_time_in_one_scheduler(moto_server: EmbeddedMoto) -> None:
    """A run still going when the job fires again: the new firing is skipped, not queued."""
    engine = engine_with(moto_server, reconcile={"report_cron": "* * * * *", "repair_cron": ""})
    started, release = threading.Event(), threading.Event()
    calls: list[tuple[Engine, str]] = []
    skipped: list[JobEvent] = []

    def slow_run(engine: Engine, mode: str) -> None:
        calls.append((engine, mode))
        started.set()
        release.wait(20)

    scheduler = build(engine, run=slow_run)
    scheduler.add_listener(skipped.append, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    try:
        job = scheduler.get_job("reconcile-report")
        job.modify(next_run_time=datetime.now(UTC))
        assert started.wait(10)
        job.modify(next_run_time=datetime.now(UTC))
        deadline = time.time() + 10
        while time.time() < deadline and not skipped:
            time.sleep(0.05)
        assert len(skipped) >= 1 and skipped[0].job_id == "reconcile-report"
        assert calls == [(engine, "report")]
    finally:
        release.set()
        scheduler.shutdown(wait=True)
