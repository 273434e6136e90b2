"""A running scheduler notices the deadlines made in its own process at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from app.services import scheduler
from tests.conftest import DATA

PARALLEL_TIMER = (DATA / "parallel_timer.bpmn").read_bytes()


def _wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> bool:
    pause = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        pause.wait(0.02)
    return condition()


def _planned_after(runner: scheduler.DeadlineScheduler, moment: datetime) -> bool:
    job = runner._scheduler.get_job(runner.JOB_ID)
    return job is not None and job.next_run_time > moment


@pytest.fixture
def idle_scheduler(app, monkeypatch):
    """The process's scheduler, its first sweep done and the next a minute away."""
    monkeypatch.setattr(scheduler, "_started", [])
    monkeypatch.setitem(app.config, "SCHEDULER_POLL_SECONDS", 60)
    runner = scheduler.start_once(app)
    try:
        soon = datetime.now(UTC) + timedelta(seconds=30)
        assert _wait_for(lambda: runner.sweeps >= 1 and _planned_after(runner, soon))
        yield runner
    finally:
        runner.shutdown()
        app.extensions.pop("gdpr.scheduler", None)


def test_a_timer_due_before_the_next_sweep_fires_on_time(
    idle_scheduler, deploy, start_instance, dpo
):
    deploy(PARALLEL_TIMER, "parallel_timer.bpmn")
    due = datetime.now(UTC) + timedelta(milliseconds=300)

    start_instance("parallel_timer", data={"due_at": due.isoformat()})

    def timer_fired() -> bool:
        queue = dpo.get("/api/v1/tasks").get_json()["items"]
        return "after_timer" in {task["bpmn_id"] for task in queue}

    assert _wait_for(timer_fired)


def test_a_deadline_later_than_the_next_sweep_leaves_the_plan_alone(
    idle_scheduler, deploy, start_instance
):
    planned = idle_scheduler._scheduler.get_job(idle_scheduler.JOB_ID).next_run_time
    deploy(PARALLEL_TIMER, "parallel_timer.bpmn")
    due = datetime.now(UTC) + timedelta(hours=2)

    start_instance("parallel_timer", data={"due_at": due.isoformat()})

    job = idle_scheduler._scheduler.get_job(idle_scheduler.JOB_ID)
    assert job.next_run_time == planned
