"""Two web processes and two scheduler processes on one PostgreSQL database.

Deadlines come due while both schedulers sweep every second: each fires once
(one `deadline.fired` audit event, one `deadline.missed` in the outbox). Tasks
completed through both web processes at once complete once.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.system import processes
from tests.system.service import (
    Database,
    Http,
    Reply,
    deployment,
    needs_postgresql,
    wait_for,
)

pytestmark = needs_postgresql

TIMER_SECONDS = 4
INSTANCES = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("scale")
    settings = {"SCHEDULER_POLL_SECONDS": "1", "EVENTS_DISPATCH_SECONDS": "3600"}
    files = processes.files(TIMER_SECONDS)
    with deployment("scale", folder, ["ops"], files, **settings) as (system, seeded):
        schedulers = [system.scheduler("scheduler1"), system.scheduler("scheduler2")]
        webs = system.webs(["web1", "web2"], workers=2)
        token = seeded.tokens["ops"]
        yield {
            "system": system,
            "db": system.db,
            "apis": [Http(web.url, token) for web in webs],
            "schedulers": schedulers,
        }


def _start(api: Http, process_id: str, **data: Any) -> str:
    reply = api.post("/api/v1/instances", {"process_id": process_id, "data": data})
    assert reply.status == 201, reply.body
    return reply.body["id"]


def _fired_once_each(db: Database, instance_ids: list[str]) -> bool:
    states = db.rows(
        "SELECT instance_id, state FROM deadlines WHERE instance_id = ANY(:ids)",
        ids=list(instance_ids),
    )
    return len(states) == len(instance_ids) and all(
        row["state"] == "fired" for row in states
    )


def _count_per_instance(db: Database, action: str) -> Counter[str]:
    rows = db.rows("SELECT instance_id FROM audit_events WHERE action = :a", a=action)
    return Counter(row["instance_id"] for row in rows)


def test_each_deadline_fires_once_with_two_schedulers(cluster):
    db: Database = cluster["db"]
    apis: list[Http] = cluster["apis"]
    subscriber = apis[0].post(
        "/api/v1/subscribers",
        {"url": "https://events.example.invalid/in", "event_types": ["*"]},
    )
    assert subscriber.status == 201, subscriber.body
    due = (datetime.now(UTC) + timedelta(seconds=TIMER_SECONDS)).isoformat()
    timers = [_start(apis[i % 2], "sys_timer") for i in range(INSTANCES)]
    legal = [_start(apis[i % 2], "sys_deadline", due=due) for i in range(INSTANCES)]

    wait_for(
        lambda: _fired_once_each(db, timers + legal),
        "every deadline to fire",
        *cluster["schedulers"],
    )

    fired = _count_per_instance(db, "deadline.fired")
    assert {instance: fired[instance] for instance in timers + legal} == {
        instance: 1 for instance in timers + legal
    }
    # Each timer woke its instance once: one ready "after" task apiece.
    after = db.rows(
        "SELECT instance_id FROM human_tasks WHERE bpmn_id = 'after' "
        "AND status = 'ready' AND instance_id = ANY(:ids)",
        ids=list(timers),
    )
    assert sorted(row["instance_id"] for row in after) == sorted(timers)
    # Each missed legal deadline was queued for the subscriber once.
    missed = Counter(
        row["payload"]["instance_id"]
        for row in db.rows(
            "SELECT payload FROM outbound_events WHERE event_type = 'deadline.missed'"
        )
    )
    assert missed == Counter(legal)


def test_tasks_completed_through_both_web_processes_complete_once(cluster):
    db: Database = cluster["db"]
    apis: list[Http] = cluster["apis"]
    instance_ids = [_start(apis[i % 2], "sys_two_tasks") for i in range(INSTANCES)]
    tasks = [_task(db, instance_id, "work") for instance_id in instance_ids]

    # Every task is completed through both web processes at the same moment.
    replies = _pairs_at_once(apis, tasks)

    for task, pair in zip(tasks, replies, strict=True):
        assert sorted(reply.status for reply in pair) == [200, 409], (task, pair)
    completed = _count_per_instance(db, "task.completed")
    assert all(completed[instance] == 1 for instance in instance_ids)
    # The next tasks, alternately through one web process and the other.
    for i, instance_id in enumerate(instance_ids):
        check = _task(db, instance_id, "check")
        reply = apis[(i + 1) % 2].post(f"/api/v1/tasks/{check}/complete", {"data": {}})
        assert reply.status == 200, reply.body
    statuses = db.rows(
        "SELECT status FROM instances WHERE id = ANY(:ids)", ids=list(instance_ids)
    )
    assert {row["status"] for row in statuses} == {"completed"}


def _task(db: Database, instance_id: str, bpmn_id: str) -> str:
    return db.scalar(
        "SELECT task_guid FROM human_tasks WHERE instance_id = :i AND bpmn_id = :b "
        "AND status = 'ready'",
        i=instance_id,
        b=bpmn_id,
    )


def _pairs_at_once(apis: list[Http], tasks: list[str]) -> list[list[Reply]]:
    barrier = threading.Barrier(2 * len(tasks))

    def complete(job: tuple[Http, str]) -> Reply:
        api, task = job
        barrier.wait()
        return api.post(f"/api/v1/tasks/{task}/complete", {"data": {}})

    jobs = [(api, task) for task in tasks for api in apis]
    with ThreadPoolExecutor(len(jobs)) as pool:
        replies = list(pool.map(complete, jobs))
    return [replies[i : i + 2] for i in range(0, len(replies), 2)]


def test_completions_racing_their_own_timers_end_one_way_each(cluster):
    db: Database = cluster["db"]
    apis: list[Http] = cluster["apis"]
    instance_ids = [_start(apis[i % 2], "sys_race") for i in range(2 * INSTANCES)]
    tasks = [_task(db, instance_id, "work") for instance_id in instance_ids]
    due = min(
        datetime.fromisoformat(d["due_at"])
        for d in apis[0]
        .get(f"/api/v1/instances/{instance_ids[0]}/deadlines")
        .body["items"]
    )
    # Completions arrive while both schedulers fire the timers on the same rows.
    wait_for(lambda: datetime.now(UTC) >= due - timedelta(seconds=0.3), "the due time")
    barrier = threading.Barrier(len(tasks))

    def complete(i: int) -> Reply:
        barrier.wait()
        return apis[i % 2].post(f"/api/v1/tasks/{tasks[i]}/complete", {"data": {}})

    with ThreadPoolExecutor(len(tasks)) as pool:
        replies = list(pool.map(complete, range(len(tasks))))

    assert {reply.status for reply in replies} <= {200, 409}, [
        reply.body for reply in replies if reply.status not in (200, 409)
    ]
    wait_for(
        lambda: (
            not db.scalar(
                "SELECT count(*) FROM deadlines WHERE instance_id = ANY(:ids) "
                "AND state = 'pending'",
                ids=instance_ids,
            )
        ),
        "every timer to fire or be cancelled",
        *cluster["schedulers"],
    )
    failed = db.rows(
        "SELECT instance_id, last_error FROM deadlines WHERE attempts > 0 "
        "AND instance_id = ANY(:ids)",
        ids=instance_ids,
    )
    assert failed == []
    for instance_id, reply in zip(instance_ids, replies, strict=True):
        states = {
            row["bpmn_id"]: row["status"]
            for row in db.rows(
                "SELECT bpmn_id, status FROM human_tasks WHERE instance_id = :i",
                i=instance_id,
            )
        }
        if reply.status == 200:
            assert states == {"work": "completed"}, instance_id
        else:
            assert states == {"work": "cancelled", "late": "ready"}, instance_id
