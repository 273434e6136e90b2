"""What the deadline sweep costs with 100,000 pending deadlines, 1,000 of them due.

A small process waits on a BPMN timer whose timeDate reads the start data's
`due_at`. 1,000 instances are started through the service on a fresh SQLite file
(and PostgreSQL when asked); each mirrors its timer as a `bpmn_timer` deadline.
Every open request also holds the legal triple the service writes (`reply`, its
target and its reminder), none of them due: the 1,000 timer instances carry
theirs, and about 32,000 cheap instance rows carry the rest, so 100,000 are
pending in all. Timed: a sweep when none is due (median of rounds),
`next_due_at()` (median), and the one sweep that wakes the 1,000, against the
bare engine refreshing the same 1,000 timers in memory. Prints the table and
the query plans, and writes bench/results/deadlines.json.

    .venv/bin/python bench/deadlines.py [--due 1000] [--pending 100000]
        [--rounds 7] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench]
        [--profile]

--postgres drops every table of that database first (and creates it if missing).
--profile writes no results: it runs the 1,000-due sweep under cProfile instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import flask_migrate
import sqlalchemy as sa
from engine_overhead import (
    Attribution,
    BenchError,
    environment,
    print_split,
    print_top,
    silence_app_log,
    top_cumulative,
)
from flask import Flask
from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.event_definitions import timer as timer_module
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from app import clock, create_app
from app.extensions import db
from app.models import Deadline, HumanTask, Instance
from app.models.deadlines import ESCALATE, FIRED, PENDING, REMIND
from app.models.instances import RUNNING, TASK_READY
from app.services import audit, definitions, instances, scheduler

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "deadlines.json"
PROCESS_ID = "bench_timer_wait"
USER_TASK = "handle_request"
BPMN_NAME = "bench_timer_wait.bpmn"
BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    id="Definitions_bench_timer_wait" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="bench_timer_wait" name="Wait for a date" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait_until_due" name="Wait until due">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition>
        <bpmn:timeDate xsi:type="bpmn:tFormalExpression">due_at</bpmn:timeDate>
      </bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="handle_request" name="Handle the request">
      <bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="done"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_until_due" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait_until_due" targetRef="handle_request" />
    <bpmn:sequenceFlow id="f3" sourceRef="handle_request" targetRef="done" />
  </bpmn:process>
</bpmn:definitions>
"""

# The timeline, on the service's clock: start, nothing due, then every timer due.
STARTED_AT = datetime(2027, 1, 4, 9, 0, tzinfo=UTC)
NONE_DUE_AT = STARTED_AT + timedelta(minutes=30)
FIRST_TIMER_AT = STARTED_AT + timedelta(hours=1)
TIMER_SPREAD = timedelta(hours=1)
ALL_DUE_AT = FIRST_TIMER_AT + TIMER_SPREAD
# Legal deadlines of open requests: a week to two months out, never due here.
LEGAL_FROM, LEGAL_SPREAD = timedelta(days=7), timedelta(days=60)
TRIPLE = (
    ("reply", "legal", ESCALATE, timedelta(0)),
    ("reply.target", "internal_target", REMIND, timedelta(days=3)),
    ("reply.reminder", "reminder", REMIND, timedelta(days=5)),
)
INSERT_CHUNK = 5_000
CLAIM_INDEX = "ix_deadlines_due"


@dataclass
class Figure:
    """One timed figure; `fired` deadlines divide it into a per-deadline time."""

    name: str
    rounds_ms: list[float]
    fired: int | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return statistics.median(self.rounds_ms)

    @property
    def per_deadline_ms(self) -> float | None:
        return self.ms / self.fired if self.fired else None


@dataclass
class Sizes:
    due: int
    pending: int

    @property
    def not_due(self) -> int:
        return self.pending - self.due

    @property
    def requests(self) -> int:
        """Open requests holding the not-due triples; the timer instances first."""
        return -(-self.not_due // len(TRIPLE))

    @property
    def cheap_instances(self) -> int:
        return max(self.requests - self.due, 0)


def timer_due_times(count: int) -> list[datetime]:
    return [FIRST_TIMER_AT + TIMER_SPREAD * (i / count) for i in range(count)]


# The bare engine ----------------------------------------------------------------


class SpiffClock(datetime):
    """datetime whose now() is a moment the bench sets: the bare engine's time."""

    at = STARTED_AT

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return cls.at.astimezone(tz) if tz is not None else cls.at


@contextmanager
def spiff_clock() -> Iterator[type[SpiffClock]]:
    # The app's engine points the timer module at the service clock; put it back.
    saved = timer_module.datetime
    timer_module.datetime = SpiffClock
    try:
        yield SpiffClock
    finally:
        timer_module.datetime = saved


def parse_bare() -> tuple[Any, dict[str, Any]]:
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_str(BPMN, BPMN_NAME)
    return parser.get_spec(PROCESS_ID), parser.get_subprocess_specs(PROCESS_ID)


def ready_user_tasks(workflow: Any) -> list[str]:
    tasks = workflow.get_tasks(state=TaskState.READY, manual=True)
    return [task.task_spec.bpmn_id for task in tasks]


def waiting_workflows(specs: tuple[Any, dict[str, Any]], due: int) -> list[Any]:
    """Workflows started with the stock script engine and run to their timer."""
    engine = PythonScriptEngine()
    workflows = []
    for due_at in timer_due_times(due):
        workflow = BpmnWorkflow(*specs, script_engine=engine)
        workflow.get_tasks(state=TaskState.READY)[0].set_data(due_at=due_at.isoformat())
        workflow.do_engine_steps()
        workflows.append(workflow)
    if any(ready_user_tasks(workflow) for workflow in workflows):
        raise BenchError("bare engine: a timer fired before it was due")
    return workflows


def bare_round(specs: tuple[Any, dict[str, Any]], due: int) -> float:
    """Refresh every due timer and run on, in ms; all must reach the user task."""
    SpiffClock.at = STARTED_AT
    workflows = waiting_workflows(specs, due)
    SpiffClock.at = ALL_DUE_AT
    gc.collect()
    start = time.perf_counter()
    for workflow in workflows:
        workflow.refresh_timers()
        workflow.do_engine_steps()
    elapsed = (time.perf_counter() - start) * 1000
    reached = sum(1 for w in workflows if ready_user_tasks(w) == [USER_TASK])
    if reached != due:
        raise BenchError(f"bare engine: {reached} of {due} reached the user task")
    return elapsed


def measure_bare(sizes: Sizes, rounds: int) -> Figure:
    specs = parse_bare()
    with spiff_clock():
        timings = [bare_round(specs, sizes.due) for _ in range(rounds)]
    name = f"bare engine: refresh {sizes.due:,} due timers"
    checks = {"reached_user_task": sizes.due * rounds}
    return Figure(name, timings, sizes.due, checks)


# The service's database ---------------------------------------------------------


def ensure_postgres_database(url: str) -> None:
    """Create the named database if it is missing, from the maintenance one."""
    target = sa.make_url(url)
    admin = sa.create_engine(
        target.set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        exists = connection.scalar(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
            {"name": target.database},
        )
        if not exists:
            connection.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def fresh_database() -> None:
    """Drop what an earlier run left, then migrate."""
    db.drop_all()
    db.session.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()
    flask_migrate.upgrade()


@contextmanager
def service(url: str) -> Iterator[Flask]:
    """The app on a freshly migrated database, on a clock frozen at the start."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    silence_app_log()
    clock.set_source(clock.Frozen(STARTED_AT))
    try:
        with app.app_context():
            fresh_database()
        yield app
    finally:
        clock.reset()
        app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
        with app.app_context():
            db.engine.dispose()


def count(query: Any) -> int:
    return int(db.session.scalar(query) or 0)


def count_deadlines(*where: Any) -> int:
    return count(sa.select(sa.func.count()).select_from(Deadline).where(*where))


def start_timer_instances(due: int) -> list[str]:
    """Deploy the process and start one instance per timer, 100 per commit."""
    definitions.deploy(BPMN, BPMN_NAME)
    db.session.commit()
    ids = []
    for number, due_at in enumerate(timer_due_times(due), start=1):
        data = {"due_at": due_at.isoformat()}
        ids.append(instances.start(PROCESS_ID, data, None, None).id)
        if number % 100 == 0:
            db.session.commit()
    db.session.commit()
    return ids


def cheap_instance_rows(count: int, template: Instance) -> list[dict[str, Any]]:
    """Open requests never loaded here: a copy of a real state, no timer."""
    common = {
        "definition_version_id": template.definition_version_id,
        "bpmn_process_id": template.bpmn_process_id,
        "status": RUNNING,
        "state": template.state,
        "state_format": template.state_format,
        "version": 1,
        "created_at": STARTED_AT,
        "updated_at": STARTED_AT,
    }
    return [{"id": str(uuid.uuid4()), **common} for _ in range(count)]


def triple_rows(owners: list[str], count: int) -> list[dict[str, Any]]:
    """The legal deadline, target and reminder of each owner, `count` in all."""
    step = LEGAL_SPREAD / max(len(owners), 1)
    rows = []
    for number in range(count):
        owner = number // len(TRIPLE)
        name, kind, action, before = TRIPLE[number % len(TRIPLE)]
        legal = STARTED_AT + LEGAL_FROM + step * owner
        rows.append(
            {
                "instance_id": owners[owner],
                "name": name,
                "kind": kind,
                "action": action,
                "role": "dpo",
                "due_at": legal - before,
                "rule": {"article": "Art 12(3)", "rule": "bench"},
                "state": PENDING,
                "attempts": 0,
                "created_at": STARTED_AT,
            }
        )
    return rows


def insert_chunked(table: sa.Table, rows: list[dict[str, Any]]) -> None:
    for first in range(0, len(rows), INSERT_CHUNK):
        db.session.execute(sa.insert(table), rows[first : first + INSERT_CHUNK])
    db.session.commit()


def add_not_due(sizes: Sizes, timer_ids: list[str]) -> None:
    template = db.session.get(Instance, timer_ids[0])
    cheap = cheap_instance_rows(sizes.cheap_instances, template)
    insert_chunked(Instance.__table__, cheap)
    owners = timer_ids + [row["id"] for row in cheap]
    insert_chunked(Deadline.__table__, triple_rows(owners, sizes.not_due))


def check_populated(sizes: Sizes) -> None:
    found = {
        "pending": count_deadlines(Deadline.state == PENDING),
        "pending timers": count_deadlines(
            Deadline.state == PENDING, Deadline.kind == "bpmn_timer"
        ),
        "due at the start": count_deadlines(Deadline.due_at <= STARTED_AT),
        "ready tasks": count(
            sa.select(sa.func.count()).where(HumanTask.status == TASK_READY)
        ),
    }
    wanted = {
        "pending": sizes.pending,
        "pending timers": sizes.due,
        "due at the start": 0,
        "ready tasks": 0,
    }
    if found != wanted:
        raise BenchError(f"set-up: found {found}, expected {wanted}")


def populate(sizes: Sizes) -> list[str]:
    """The timer instances through the service, then the not-due rows in bulk."""
    timer_ids = start_timer_instances(sizes.due)
    add_not_due(sizes, timer_ids)
    if db.engine.dialect.name == "postgresql":
        # Autovacuum would analyze 100,000 new rows soon; plan with the statistics.
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
    check_populated(sizes)
    return timer_ids


# Measuring the service ----------------------------------------------------------


@contextmanager
def recorded_statements(app: Flask) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement sent meanwhile, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        sent.append((statement, params))

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def timed_ms(app: Flask, call: Any) -> tuple[float, Any]:
    """Run `call` in a fresh app context, as the scheduler's job does."""
    with app.app_context():
        gc.collect()
        start = time.perf_counter()
        value = call()
        elapsed = (time.perf_counter() - start) * 1000
        db.session.remove()
    return elapsed, value


def sweep_none_due(app: Flask, label: str, rounds: int) -> Figure:
    timings = []
    for _ in range(rounds):
        elapsed, report = timed_ms(app, lambda: scheduler.sweep(NONE_DUE_AT))
        if report.fired or report.failed:
            raise BenchError(f"{label}: a sweep before every due time fired")
        timings.append(elapsed)
    return Figure(f"{label}: sweep, none due", timings, checks={"fired": 0})


def next_due(app: Flask, label: str, rounds: int) -> Figure:
    timings = []
    for _ in range(rounds):
        elapsed, upcoming = timed_ms(app, scheduler.next_due_at)
        if upcoming != FIRST_TIMER_AT:
            raise BenchError(f"{label}: next_due_at() is {upcoming}")
        timings.append(elapsed)
    checks = {"next_due_at": FIRST_TIMER_AT.isoformat()}
    return Figure(f"{label}: next_due_at()", timings, checks=checks)


def check_woken(sizes: Sizes, timer_ids: list[str], fired: int) -> dict[str, Any]:
    """Every timer fired once, its instance has its user task, the rest wait."""
    woken = set(
        db.session.scalars(
            sa.select(HumanTask.instance_id).where(
                HumanTask.status == TASK_READY, HumanTask.bpmn_id == USER_TASK
            )
        )
    )
    chain = audit.verify()
    found = {
        "reported_fired": fired,
        "deadlines_fired": count_deadlines(Deadline.state == FIRED),
        "timers_fired": count_deadlines(
            Deadline.state == FIRED, Deadline.kind == "bpmn_timer"
        ),
        "instances_with_ready_task": len(woken & set(timer_ids)),
        "ready_tasks": count(
            sa.select(sa.func.count()).where(HumanTask.status == TASK_READY)
        ),
        "still_pending": count_deadlines(Deadline.state == PENDING),
        "audit_chain_ok": chain.ok,
    }
    wanted = {
        **{key: sizes.due for key in found},
        "still_pending": sizes.not_due,
        "audit_chain_ok": True,
    }
    if found != wanted:
        raise BenchError(f"sweep of the due: found {found}, expected {wanted}")
    return found | {"audit_events_verified": chain.checked}


def sweep_all_due(app: Flask, label: str, sizes: Sizes, timer_ids: list[str]) -> Figure:
    """The one sweep that wakes every timer instance, with its SQL counted."""
    clock.set_source(clock.Frozen(ALL_DUE_AT))
    with recorded_statements(app) as sent:
        elapsed, report = timed_ms(app, lambda: scheduler.sweep(ALL_DUE_AT))
    with app.app_context():
        checks = check_woken(sizes, timer_ids, report.fired)
    checks["sql_statements"] = len(sent)
    name = f"{label}: sweep, {sizes.due:,} due"
    return Figure(name, [elapsed], report.fired, checks)


# Query plans --------------------------------------------------------------------


def captured(app: Flask, call: Any, marker: str) -> list[tuple[str, Any]]:
    """The statements `call` sends that contain `marker`."""
    with recorded_statements(app) as sent, app.app_context():
        call()
        db.session.remove()
    return [(sql, params) for sql, params in sent if marker in sql]


def explain(sql: str, params: Any) -> list[str]:
    connection = db.session.connection()
    if db.engine.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        lines = [row[3] for row in rows]
    else:
        lines = [row[0] for row in connection.exec_driver_sql(f"EXPLAIN {sql}", params)]
    db.session.rollback()
    return lines


def statement_ms(sql: str, params: Any, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        db.session.connection().exec_driver_sql(sql, params).all()
        timings.append((time.perf_counter() - start) * 1000)
        db.session.rollback()
    return statistics.median(timings)


def print_plans(app: Flask, label: str, rounds: int) -> dict[str, dict[str, Any]]:
    """The plans of the sweep's claim (none due, all due) and of next_due_at."""
    # The claim alone at the due moment: selected, locked, then rolled back.
    named = {
        "claim, none due": captured(
            app, lambda: scheduler.sweep(NONE_DUE_AT), "FROM deadlines"
        )[0],
        "claim, all due": captured(
            app, lambda: scheduler._due(ALL_DUE_AT), "FROM deadlines"
        )[0],
    }
    upcoming = captured(app, scheduler.next_due_at, "FROM deadlines")
    named |= {f"next_due_at query {n}": q for n, q in enumerate(upcoming, 1)}
    plans = {}
    with app.app_context():
        for name, (sql, params) in named.items():
            plans[name] = {
                "sql": " ".join(sql.split()),
                "plan": explain(sql, params),
                "ms_alone": round(statement_ms(sql, params, rounds), 4),
            }
            print_plan(label, name, plans[name])
    for name in ("claim, none due", "claim, all due"):
        if not any(CLAIM_INDEX in line for line in plans[name]["plan"]):
            raise BenchError(f"{label}: the sweep's {name} does not use {CLAIM_INDEX}")
    return plans


def print_plan(label: str, name: str, plan: dict[str, Any]) -> None:
    print(f"\n{label}, {name} ({plan['ms_alone']:.2f} ms alone):\n  {plan['sql']}")
    print("\n".join(f"    {line}" for line in plan["plan"]))


# Runs ---------------------------------------------------------------------------


def database_label(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite file"


def measure_service(url: str, sizes: Sizes, rounds: int) -> list[Figure]:
    label = database_label(url)
    with service(url) as app:
        with app.app_context():
            timer_ids = populate(sizes)
        plans = print_plans(app, label, rounds)
        figures = [
            sweep_none_due(app, label, rounds),
            next_due(app, label, rounds),
            sweep_all_due(app, label, sizes, timer_ids),
        ]
    figures[0].checks["claim"] = plans["claim, none due"]
    figures[1].checks["queries"] = [plans[n] for n in plans if n.startswith("next")]
    figures[2].checks["claim"] = plans["claim, all due"]
    for figure in figures:
        print(f"  {figure.name}: {figure.ms:.2f} ms", file=sys.stderr, flush=True)
    return figures


def print_table(figures: list[Figure], reference: Figure) -> None:
    print(f"\n{'figure':<40} {'ms':>10} {'ms/deadline':>12} {'x bare':>8}")
    for figure in figures:
        per = figure.per_deadline_ms
        per_text = f"{per:>12.3f}" if per is not None else f"{'-':>12}"
        ratio = f"{figure.ms / reference.ms:>8.1f}" if per is not None else f"{'-':>8}"
        print(f"{figure.name:<40} {figure.ms:>10.2f} {per_text} {ratio}")
    print("(medians; the due sweep runs once; x bare: against the bare refresh)")
    for figure in figures:
        if "sql_statements" in figure.checks and figure.fired:
            per = figure.checks["sql_statements"] / figure.fired
            print(f"{figure.name}: {per:.1f} SQL statements per deadline fired")


def write_results(figures: list[Figure], reference: Figure, args: Any) -> None:
    sizes = Sizes(args.due, args.pending)
    document = environment() | {
        "due": sizes.due,
        "pending": sizes.pending,
        "cheap_instances": sizes.cheap_instances,
        "rounds": args.rounds,
        "results": [result_entry(figure, reference) for figure in figures],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    partial = RESULTS.with_suffix(".json.tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(RESULTS)


def result_entry(figure: Figure, reference: Figure) -> dict[str, Any]:
    per = figure.per_deadline_ms
    return {
        "variant": figure.name,
        "ms": round(figure.ms, 4),
        "ms_per_deadline": round(per, 4) if per is not None else None,
        "ratio_to_bare": round(figure.ms / reference.ms, 3) if per else None,
        "rounds_ms": [round(ms, 4) for ms in figure.rounds_ms],
        "checks": figure.checks,
    }


def run_all(args: argparse.Namespace, sqlite_url: str) -> list[Figure]:
    sizes = Sizes(args.due, args.pending)
    figures = [measure_bare(sizes, args.rounds)]
    print(f"  {figures[0].name}: {figures[0].ms:.2f} ms", file=sys.stderr)
    for url in filter(None, (sqlite_url, args.postgres)):
        figures += measure_service(url, sizes, args.rounds)
    return figures


# Profile ------------------------------------------------------------------------


def profile(args: argparse.Namespace, sqlite_url: str) -> None:
    """Set up one database, then run the due sweep under cProfile."""
    url = args.postgres or sqlite_url
    sizes = Sizes(args.due, args.pending)
    with service(url) as app:
        with app.app_context():
            timer_ids = populate(sizes)
        clock.set_source(clock.Frozen(ALL_DUE_AT))
        profiler = cProfile.Profile()
        with app.app_context():
            profiler.enable()
            report = scheduler.sweep(ALL_DUE_AT)
            profiler.disable()
            db.session.remove()
        with app.app_context():
            check_woken(sizes, timer_ids, report.fired)
    attribution = Attribution(pstats.Stats(profiler).stats)  # type: ignore[attr-defined]
    print(f"\n{database_label(url)}: the sweep of {sizes.due:,} due under cProfile")
    print("(per instance = per deadline fired: each wakes one instance)")
    print_split(attribution, sizes.due)
    top = top_cumulative(attribution, args.top)
    print_top(attribution, top, sizes.due, f"top {args.top} by cumulative time")
    own = top_cumulative(attribution, 15, "app/")
    print_top(attribution, own, sizes.due, "the service's own code, top 15")


# Command line -------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=1_000, help="timers due")
    parser.add_argument("--pending", type=int, default=100_000, help="in all")
    parser.add_argument("--rounds", type=int, default=7, help="for the medians")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL")
    parser.add_argument("--profile", action="store_true", help="profile the sweep")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    args = parser.parse_args()
    if min(args.due, args.rounds) < 1 or args.pending < args.due:
        parser.error("--due and --rounds must be positive, --pending at least --due")
    if args.postgres and sa.make_url(args.postgres).database in (None, "test"):
        parser.error("--postgres needs its own database, not the test suite's")
    return args


def main() -> int:
    args = arguments()
    if args.postgres:
        ensure_postgres_database(args.postgres)
    with tempfile.TemporaryDirectory(prefix="deadlines-") as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        if args.profile:
            profile(args, sqlite_url)
            return 0
        figures = run_all(args, sqlite_url)
    print_table(figures, figures[0])
    write_results(figures, figures[0], args)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
