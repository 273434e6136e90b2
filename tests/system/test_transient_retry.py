"""A transaction PostgreSQL rolls back as a deadlock victim is run again, not a 500.

The system tests (test_scale_out) met this for real: a completion and a deadline
sweep on one instance wait on each other (the instance row, the audit chain's
lock). Here the same error is raised on purpose, on every database.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg.errors
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from app.extensions import db
from app.models import Deadline
from app.models.deadlines import FIRED, PENDING, REMIND, WAKE
from app.services import deadlines, scheduler
from app.services import tasks as task_service


def _deadlock() -> OperationalError:
    return OperationalError(
        "SELECT 1", {}, psycopg.errors.DeadlockDetected("deadlock detected")
    )


def _fail_first(monkeypatch, module, name, error):
    real = getattr(module, name)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)
    return calls


@pytest.fixture
def first_task(review_process, start_instance, officer):
    instance = start_instance()
    reply = officer.get(f"/api/v1/tasks?instance_id={instance['id']}")
    return reply.get_json()["items"][0]


def test_a_completion_that_lost_a_deadlock_is_run_again(
    app, monkeypatch, first_task, officer
):
    calls = _fail_first(monkeypatch, task_service, "complete", _deadlock())

    reply = officer.post(
        f"/api/v1/tasks/{first_task['id']}/complete",
        json={"data": {"summary": "Checked."}},
    )

    assert reply.status_code == 200, reply.get_json()
    assert len(calls) == 2
    again = officer.post(
        f"/api/v1/tasks/{first_task['id']}/complete",
        json={"data": {"summary": "Checked."}},
    )
    assert again.status_code == 409


def test_other_database_errors_are_not_run_again(monkeypatch, first_task, officer):
    error = ProgrammingError("SELECT 1", {}, Exception("syntax"))
    calls = _fail_first(monkeypatch, task_service, "complete", error)

    reply = officer.post(
        f"/api/v1/tasks/{first_task['id']}/complete",
        json={"data": {"summary": "Checked."}},
    )

    assert reply.status_code == 500
    assert len(calls) == 1


def test_a_deadline_that_lost_a_deadlock_fires_on_the_next_sweep(
    app, monkeypatch, first_task, frozen_clock
):
    with app.app_context():
        row = Deadline(
            instance_id=first_task["instance_id"],
            name="nudge",
            kind="reminder",
            action=REMIND,
            due_at=frozen_clock.at - timedelta(minutes=1),
            rule={},
        )
        db.session.add(row)
        db.session.commit()
        calls = _fail_first(monkeypatch, deadlines, "record_fired", _deadlock())

        first = scheduler.sweep(frozen_clock.at)

        assert (first.fired, first.failed) == (0, 0)
        kept = db.session.get(Deadline, row.id)
        assert (kept.state, kept.attempts, kept.last_error) == (PENDING, 0, None)
        second = scheduler.sweep(frozen_clock.at + timedelta(seconds=2))
        assert second.fired_ids == [row.id]
        assert db.session.get(Deadline, row.id).state == FIRED
        assert len(calls) == 2


def test_a_timer_whose_instance_a_request_holds_waits_for_the_next_sweep(
    app, monkeypatch, first_task, frozen_clock
):
    with app.app_context():
        row = Deadline(
            instance_id=first_task["instance_id"],
            name="timer:wait",
            kind="bpmn_timer",
            action=WAKE,
            due_at=frozen_clock.at - timedelta(minutes=1),
            rule={},
        )
        db.session.add(row)
        db.session.commit()
        real = scheduler._lock_unless_busy

        def held_by_a_request(instance_id):
            raise scheduler.InstanceBusy(instance_id)

        monkeypatch.setattr(scheduler, "_lock_unless_busy", held_by_a_request)

        busy = scheduler.sweep(frozen_clock.at)

        assert (busy.fired, busy.failed) == (0, 0)
        kept = db.session.get(Deadline, row.id)
        assert (kept.state, kept.attempts) == (PENDING, 0)
        assert kept.retry_at > frozen_clock.at
        monkeypatch.setattr(scheduler, "_lock_unless_busy", real)
        free = scheduler.sweep(frozen_clock.at + timedelta(seconds=2))
        assert free.fired_ids == [row.id]
