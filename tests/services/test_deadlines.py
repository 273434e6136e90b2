"""Legal deadlines from BPMN, the timers that read them, and the sweep that fires."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, Deadline
from app.services import deadlines, instances, scheduler
from tests.conftest import DATA

REQUEST = (DATA / "request_deadline.bpmn").read_bytes()
RECEIVED = "2026-03-02T10:00:00+01:00"


@pytest.fixture
def request_instance(frozen_clock, deploy, start_instance):
    assert deploy(REQUEST, "request_deadline.bpmn").status_code == 201
    return start_instance("request_deadline", data={"received_at": RECEIVED})


def _deadlines(officer, instance_id):
    reply = officer.get(f"/api/v1/instances/{instance_id}/deadlines").get_json()
    return {item["name"]: item for item in reply["items"]}


def test_a_request_gets_its_legal_deadline_target_and_reminder(
    request_instance, officer
):
    found = _deadlines(officer, request_instance["id"])

    reply = found["reply"]
    assert reply["kind"] == "legal"
    assert reply["rule"]["article"] == "Art 12(3)"
    assert reply["rule"]["rule"] == "Regulation 1182/71 Art 3(2)(c)"
    assert reply["due_at"].startswith("2026-04-02T21:59:59")
    assert found["reply.target"]["due_at"].startswith("2026-03-30T")
    assert found["reply.reminder"]["due_at"].startswith("2026-03-26T")


def test_the_bpmn_timer_reads_the_same_absolute_time(request_instance, officer):
    found = _deadlines(officer, request_instance["id"])

    timer = found["timer:deadline_passed"]
    assert timer["kind"] == "bpmn_timer"
    assert timer["due_at"] == found["reply"]["due_at"]


def test_nothing_fires_before_its_time(app, request_instance, frozen_clock):
    with app.app_context():
        report = scheduler.sweep(frozen_clock.advance(days=20))

    assert report.fired == 0


def test_the_reminder_fires_first_and_only_once(
    app, request_instance, frozen_clock, officer
):
    with app.app_context():
        first = scheduler.sweep(datetime(2026, 3, 27, 9, tzinfo=UTC))
        second = scheduler.sweep(datetime(2026, 3, 27, 10, tzinfo=UTC))

    assert (first.fired, second.fired) == (1, 0)
    states = {
        n: d["state"] for n, d in _deadlines(officer, request_instance["id"]).items()
    }
    assert states["reply.reminder"] == "fired"
    assert states["reply"] == "pending"


def test_a_missed_deadline_wakes_the_instance_and_escalates(
    app, request_instance, frozen_clock, officer, dpo
):
    frozen_clock.at = datetime(2026, 4, 3, 8, tzinfo=UTC)
    with app.app_context():
        report = scheduler.sweep()

    assert report.fired == 4
    queue = dpo.get("/api/v1/tasks").get_json()["items"]
    assert [task["bpmn_id"] for task in queue] == ["escalated"]
    assert officer.get("/api/v1/tasks").get_json()["total"] == 0
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "deadline.fired")
        ).all()
    assert sorted(a["deadline"] for a in actions) == [
        "reply",
        "reply.reminder",
        "reply.target",
        "timer:deadline_passed",
    ]


def test_answering_in_time_meets_the_deadline_and_cancels_the_rest(
    app, request_instance, frozen_clock, officer
):
    task = officer.get("/api/v1/tasks").get_json()["items"][0]

    officer.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}})

    states = {
        n: d["state"] for n, d in _deadlines(officer, request_instance["id"]).items()
    }
    assert states == {
        "reply": "met",
        "reply.target": "cancelled",
        "reply.reminder": "cancelled",
        "timer:deadline_passed": "cancelled",
    }
    with app.app_context():
        assert scheduler.sweep(datetime(2026, 5, 1, tzinfo=UTC)).fired == 0


def test_an_extension_moves_the_deadline_and_its_followers(app, request_instance):
    with app.app_context():
        moved = instances.extend_deadline(
            request_instance["id"], "reply", "P2M", "complex"
        )
        db.session.commit()
        family = {d.name: d for d in deadlines.for_instance(request_instance["id"])}

    assert moved.due_at.date().isoformat() == "2026-06-02"
    assert moved.rule["extensions"] == [{"by": "P2M", "reason": "complex"}]
    assert family["reply.target"].due_at.date().isoformat() == "2026-05-28"


def test_the_overview_lists_pending_deadlines_soonest_first(request_instance, officer):
    items = officer.get("/api/v1/deadlines").get_json()["items"]

    dues = [item["due_at"] for item in items]
    assert dues == sorted(dues)
    assert [item["name"] for item in items][0] == "reply.reminder"
    legal = officer.get("/api/v1/deadlines?kind=legal").get_json()["items"]
    assert [item["name"] for item in legal] == ["reply"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "yesterday", "period": "P1M"}, "start"),
        ({"start": "2026-03-02T10:00:00", "period": "P1M"}, "start"),
        ({"start": RECEIVED, "period": "soon"}, "period"),
        ({"start": RECEIVED}, "period"),
    ],
    ids=["not-a-time", "naive", "bad-period", "no-period"],
)
def test_a_deadline_that_cannot_be_computed_is_refused(
    app, request_instance, params, field
):
    from app.errors import Unprocessable

    with app.app_context(), pytest.raises(Unprocessable) as refused:
        deadlines.set_deadline(request_instance["id"], "other", **params)

    assert refused.value.errors[0]["field"] == field


def _due_reminders(app, instance_id, count):
    due = datetime(2026, 1, 1, tzinfo=UTC)
    with app.app_context():
        db.session.add_all(
            Deadline(
                instance_id=instance_id,
                name=f"r{n}",
                kind="reminder",
                action="remind",
                due_at=due + timedelta(seconds=n),
            )
            for n in range(count)
        )
        db.session.commit()


def test_two_schedulers_fire_each_deadline_exactly_once(app, request_instance):
    _due_reminders(app, request_instance["id"], 150)
    reports = []

    def run() -> None:
        with app.app_context():
            reports.append(scheduler.sweep(datetime(2026, 1, 2, tzinfo=UTC)))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(report.fired for report in reports) == 150
    fired = [i for report in reports for i in report.fired_ids]
    assert len(fired) == len(set(fired)) == 150
    with app.app_context():
        events = db.session.scalar(
            select(func.count()).where(AuditEvent.action == "deadline.fired")
        )
    assert events == 150


def test_deadlines_missed_while_stopped_fire_when_the_scheduler_starts(
    app, request_instance, frozen_clock
):
    _due_reminders(app, request_instance["id"], 3)
    runner = scheduler.DeadlineScheduler(app, poll_seconds=60)

    runner.start()
    try:
        for _ in range(100):
            if runner.sweeps:
                break
            threading.Event().wait(0.01)
    finally:
        runner.shutdown()

    with app.app_context():
        states = db.session.scalars(
            select(Deadline.state).where(Deadline.name.in_(["r0", "r1", "r2"]))
        ).all()
    assert states == ["fired"] * 3


def test_a_timer_that_fires_during_another_step_is_recorded_as_fired(
    app, frozen_clock, deploy, start_instance, dpo
):
    deploy((DATA / "parallel_timer.bpmn").read_bytes(), "parallel_timer.bpmn")
    instance = start_instance("parallel_timer", data={"due_at": "2026-03-02T12:00:00Z"})
    other = dpo.get("/api/v1/tasks").get_json()["items"][0]
    frozen_clock.advance(hours=4)

    dpo.post(f"/api/v1/tasks/{other['id']}/complete", json={"data": {}})

    queue = [task["bpmn_id"] for task in dpo.get("/api/v1/tasks").get_json()["items"]]
    assert queue == ["after_timer"]
    timer = _deadlines(dpo, instance["id"])["timer:wait"]
    assert timer["state"] == "fired"
    with app.app_context():
        assert scheduler.sweep().fired == 0
        fired = db.session.scalar(
            select(func.count()).where(AuditEvent.action == "deadline.fired")
        )
    assert fired == 1


def test_the_audit_chain_holds_after_a_sweep_with_a_failure(
    app, request_instance, monkeypatch
):
    _due_reminders(app, request_instance["id"], 4)
    calls = {"n": 0}
    real = scheduler._notify

    def flaky(deadline):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("subscriber table unavailable")
        real(deadline)

    monkeypatch.setattr(scheduler, "_notify", flaky)
    with app.app_context():
        report = scheduler.sweep(datetime(2026, 1, 2, tzinfo=UTC))
        from app.services import audit

        chain = audit.verify()

    assert (report.fired, report.failed) == (3, 1)
    assert chain.ok, chain


def test_two_scheduler_processes_fire_each_deadline_exactly_once(
    app, request_instance, database_url
):
    _due_reminders(app, request_instance["id"], 200)
    env = {**os.environ, "DATABASE_URL": database_url, "SCHEDULER_ENABLED": "0"}
    command = [sys.executable, "-m", "flask", "--app", "app", "scheduler", "--once"]

    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE) for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60)[0].decode() for run in runs]

    assert [run.returncode for run in runs] == [0, 0]
    fired = sum(int(output.split()[1]) for output in outputs)
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "deadline.fired")
        ).all()
    names = [event["deadline"] for event in events]
    # The processes read the real clock: the request's own four are due too.
    assert fired == len(names) == len(set(names)) == 204


def test_a_timer_woken_at_its_very_instant_fires_on_the_next_sweep(
    app, request_instance, officer, dpo, frozen_clock
):
    due = datetime.fromisoformat(
        _deadlines(officer, request_instance["id"])["timer:deadline_passed"]["due_at"]
    )
    frozen_clock.at = due

    with app.app_context():
        at_the_instant = scheduler.sweep()
        frozen_clock.advance(seconds=1)
        a_second_later = scheduler.sweep()

    # The engine waits until the time is past: the first wake finds it waiting,
    # and the sweep does not wake it again at the same instant. What fired:
    # the reply deadline, its target, its reminder and the timer, once each.
    assert (at_the_instant.fired, at_the_instant.failed) == (4, 0)
    assert a_second_later.fired >= 1
    tasks = dpo.get(f"/api/v1/tasks?instance_id={request_instance['id']}")
    assert "escalated" in {task["bpmn_id"] for task in tasks.get_json()["items"]}


def _rows(officer, instance_id):
    """Every row of the instance's deadlines, by name, oldest first."""
    reply = officer.get(f"/api/v1/instances/{instance_id}/deadlines").get_json()
    rows = {}
    for item in sorted(reply["items"], key=lambda item: item["id"]):
        rows.setdefault(item["name"], []).append(item)
    return rows


def _dates_and_states(rows):
    return [(row["due_at"][:10], row["state"]) for row in rows]


def _dpo_queue(dpo, instance_id):
    tasks = dpo.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"]
    return [task["bpmn_id"] for task in tasks if task["lane"] == "DPO"]


def _assert_extended_after_the_reminder(app, officer, dpo, frozen_clock, instance_id):
    rows = _rows(officer, instance_id)
    assert _dates_and_states(rows["reply"]) == [("2026-06-02", "pending")]
    assert _dates_and_states(rows["reply.target"]) == [
        ("2026-03-30", "fired"),
        ("2026-05-28", "pending"),
    ]
    assert _dates_and_states(rows["reply.reminder"]) == [
        ("2026-03-26", "fired"),
        ("2026-05-26", "pending"),
    ]
    [timer] = rows["timer:deadline_passed"]
    assert (timer["state"], timer["due_at"]) == ("pending", rows["reply"][0]["due_at"])

    frozen_clock.at = datetime(2026, 4, 3, 8, tzinfo=UTC)
    with app.app_context():
        assert scheduler.sweep().fired == 0
        # Any step refreshes the engine's timers: it must wait for the new end too.
        running = instances.lock_instance(instance_id)
        instances.run_and_save(running, instances.load(running), None)
        db.session.commit()
    assert _dpo_queue(dpo, instance_id) == []
    officer_tasks = officer.get(f"/api/v1/tasks?instance_id={instance_id}")
    assert "answer" in {task["bpmn_id"] for task in officer_tasks.get_json()["items"]}

    frozen_clock.at = datetime(2026, 6, 3, 8, tzinfo=UTC)
    with app.app_context():
        assert scheduler.sweep().fired == 4
    assert _dpo_queue(dpo, instance_id) == ["escalated"]


def test_an_extension_after_the_reminder_fired_remakes_it_and_moves_the_timer(
    app, request_instance, frozen_clock, officer, dpo
):
    frozen_clock.at = datetime(2026, 3, 31, 8, tzinfo=UTC)
    with app.app_context():
        assert scheduler.sweep().fired == 2

        instances.extend_deadline(request_instance["id"], "reply", "P2M", "complex")
        db.session.commit()

    _assert_extended_after_the_reminder(
        app, officer, dpo, frozen_clock, request_instance["id"]
    )


def test_an_extension_decided_in_the_process_moves_its_waiting_timer(
    app, frozen_clock, deploy, start_instance, officer, dpo
):
    raw = (DATA / "request_extension.bpmn").read_bytes()
    assert deploy(raw, "request_extension.bpmn").status_code == 201
    instance = start_instance("request_extension", data={"received_at": RECEIVED})
    frozen_clock.at = datetime(2026, 3, 31, 8, tzinfo=UTC)
    with app.app_context():
        assert scheduler.sweep().fired == 2
    tasks = officer.get(f"/api/v1/tasks?instance_id={instance['id']}").get_json()
    [decide] = [t for t in tasks["items"] if t["bpmn_id"] == "decide_extension"]

    done = officer.post(f"/api/v1/tasks/{decide['id']}/complete", json={"data": {}})

    assert done.status_code == 200, done.get_json()
    _assert_extended_after_the_reminder(app, officer, dpo, frozen_clock, instance["id"])


def test_an_answer_after_the_deadline_fired_is_recorded_as_met_late(
    app, frozen_clock, deploy, start_instance, officer
):
    raw = (DATA / "late_answer.bpmn").read_bytes()
    assert deploy(raw, "late_answer.bpmn").status_code == 201
    instance = start_instance("late_answer", data={"received_at": RECEIVED})
    frozen_clock.at = datetime(2026, 4, 3, 8, tzinfo=UTC)
    with app.app_context():
        assert scheduler.sweep().fired == 3
    frozen_clock.at = datetime(2026, 4, 4, 8, tzinfo=UTC)
    tasks = officer.get(f"/api/v1/tasks?instance_id={instance['id']}").get_json()
    [task] = tasks["items"]

    done = officer.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}})

    assert done.status_code == 200, done.get_json()
    found = officer.get(f"/api/v1/instances/{instance['id']}").get_json()
    assert found["status"] == "completed"
    [reply] = _rows(officer, instance["id"])["reply"]
    assert reply["state"] == "met"
    # Due at 21:59:59.999999 UTC on 2 April, met at 08:00 UTC on 4 April.
    late = 34 * 3600
    assert (reply["rule"]["late"], reply["rule"]["late_seconds"]) == (True, late)
    with app.app_context():
        [met] = db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.action == "deadline.met")
        ).all()
    assert met == {"deadline": "reply", "late_seconds": late}


def test_a_fired_deadline_can_be_cancelled_and_an_unknown_one_cannot(
    app, request_instance, frozen_clock
):
    from app.errors import NotFound

    frozen_clock.at = datetime(2026, 4, 3, 8, tzinfo=UTC)
    with app.app_context():
        scheduler.sweep()
        cancelled = deadlines.close(request_instance["id"], "reply", "cancelled")
        state, late = cancelled.state, cancelled.rule["late"]
        with pytest.raises(NotFound):
            deadlines.close(request_instance["id"], "no_such_deadline", "met")

    assert (state, late) == ("cancelled", True)


def test_an_answer_in_time_is_not_late(app, request_instance, officer):
    task = officer.get("/api/v1/tasks").get_json()["items"][0]

    officer.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": {}})

    [reply] = _rows(officer, request_instance["id"])["reply"]
    assert reply["state"] == "met"
    assert "late" not in reply["rule"]


def test_the_subdivision_setting_brings_its_own_holidays(
    app, frozen_clock, deploy, start_instance, officer, monkeypatch
):
    monkeypatch.setitem(app.config, "MEMBER_STATE", "DE")
    monkeypatch.setitem(app.config, "MEMBER_STATE_SUBDIVISION", "BY")
    monkeypatch.setitem(app.config, "TIMEZONE", "Europe/Berlin")
    assert deploy(REQUEST, "request_deadline.bpmn").status_code == 201

    # 4 June 2026 is Corpus Christi, a public holiday in Bavaria only.
    instance = start_instance(
        "request_deadline", data={"received_at": "2026-05-04T10:00:00+02:00"}
    )

    [reply] = _rows(officer, instance["id"])["reply"]
    assert reply["due_at"].startswith("2026-06-05T21:59:59")
    assert reply["rule"]["subdivision"] == "BY"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE: 'Mars/Olympus'"),
        ({"MEMBER_STATE": "US"}, "MEMBER_STATE: 'US'"),
        (
            {"MEMBER_STATE": "DE", "MEMBER_STATE_SUBDIVISION": "XX"},
            "MEMBER_STATE_SUBDIVISION: 'XX' is not a subdivision of DE",
        ),
    ],
    ids=["time-zone", "member-state", "subdivision"],
)
def test_a_bad_calendar_setting_stops_the_app_at_start(settings, named):
    from app import create_app
    from app.services.deadlines import InvalidSetting

    with pytest.raises(InvalidSetting, match=named):
        create_app(
            {
                "TESTING": True,
                "SECRET_KEY": "test-only-secret",
                "SCHEDULER_ENABLED": False,
                **settings,
            }
        )
