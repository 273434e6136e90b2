"""Many clients on the same instances at once, against real gunicorn workers.

Every thread has its own connections; four workers serve them, each with its own
database connection, so the instance row lock and the audit chain lock are what
keep one winner. Any 500 is a defect.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.system import processes
from tests.system.service import Database, Http, Reply, deployment, needs_postgresql

pytestmark = needs_postgresql

THREADS = 16
CALLERS = [f"worker{i}" for i in range(THREADS)]


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("concurrency")
    with deployment("concurrency", folder, CALLERS, processes.files()) as (
        system,
        seeded,
    ):
        web = system.web("web", workers=4)
        yield {"system": system, "web": web, "tokens": seeded.tokens}


def _client(system: dict[str, Any], caller: str = "worker0") -> Http:
    return Http(system["web"].url, system["tokens"][caller])


def _at_once(count: int, call: Callable[[int], Reply]) -> list[Reply]:
    """Run `call(i)` in `count` threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(i: int) -> Reply:
        barrier.wait()
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def _start(client: Http, process_id: str, **data: Any) -> str:
    reply = client.post("/api/v1/instances", {"process_id": process_id, "data": data})
    assert reply.status == 201, reply.body
    return reply.body["id"]


def _ready_task(db: Database, instance_id: str, bpmn_id: str) -> str:
    return db.scalar(
        "SELECT task_guid FROM human_tasks WHERE instance_id = :i AND bpmn_id = :b "
        "AND status = 'ready'",
        i=instance_id,
        b=bpmn_id,
    )


def _assert_chain_whole(db: Database) -> None:
    """Each audit event links to the one before: no append raced another."""
    rows = db.rows("SELECT prev_sha256, sha256 FROM audit_events ORDER BY id")
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["prev_sha256"] == before["sha256"]


def _statuses(replies: list[Reply]) -> Counter[int]:
    return Counter(reply.status for reply in replies)


def _audit(db: Database, action: str, instance_id: str) -> int:
    return db.scalar(
        "SELECT count(*) FROM audit_events WHERE action = :a AND instance_id = :i",
        a=action,
        i=instance_id,
    )


def test_one_task_completed_by_many_at_once_completes_once(system):
    db: Database = system["system"].db
    instance_id = _start(_client(system), "sys_two_tasks")
    task = _ready_task(db, instance_id, "work")
    version = db.scalar("SELECT version FROM instances WHERE id = :i", i=instance_id)

    replies = _at_once(
        THREADS,
        lambda i: _client(system, CALLERS[i]).post(
            f"/api/v1/tasks/{task}/complete", {"data": {}}
        ),
    )

    assert _statuses(replies) == {200: 1, 409: THREADS - 1}, [r.body for r in replies]
    assert {r.body["code"] for r in replies if r.status == 409} == {"task-not-ready"}
    assert _audit(db, "task.completed", instance_id) == 1
    rows = db.rows(
        "SELECT bpmn_id, status FROM human_tasks WHERE instance_id = :i "
        "ORDER BY bpmn_id",
        i=instance_id,
    )
    assert rows == [
        {"bpmn_id": "check", "status": "ready"},
        {"bpmn_id": "work", "status": "completed"},
    ]
    # One save of the instance: the completion and nothing else moved the version.
    after = db.scalar("SELECT version FROM instances WHERE id = :i", i=instance_id)
    assert after == version + 1
    _assert_chain_whole(db)


def test_one_task_claimed_by_many_at_once_has_one_winner(system):
    db: Database = system["system"].db
    instance_id = _start(_client(system), "sys_two_tasks")
    task = _ready_task(db, instance_id, "work")

    replies = _at_once(
        THREADS,
        lambda i: _client(system, CALLERS[i]).post(f"/api/v1/tasks/{task}/claim"),
    )

    assert _statuses(replies) == {200: 1, 409: THREADS - 1}, [r.body for r in replies]
    assert {r.body["code"] for r in replies if r.status == 409} == {"task-claimed"}
    winner = next(r.body["claimed_by_id"] for r in replies if r.status == 200)
    claimed = db.scalar(
        "SELECT claimed_by_id FROM human_tasks WHERE task_guid = :t", t=task
    )
    assert claimed == winner
    assert _audit(db, "task.claimed", instance_id) == 1
    _assert_chain_whole(db)


def test_one_message_sent_by_many_at_once_is_delivered_once(system):
    db: Database = system["system"].db
    instance_id = _start(_client(system), "order_payment", order_id="C-1")
    message = {
        "name": "payment_received",
        "correlation": {"order_id": "C-1"},
        "payload": {"amount": 10},
    }

    replies = _at_once(
        THREADS, lambda i: _client(system, CALLERS[i]).post("/api/v1/messages", message)
    )

    # Delivered once; afterwards nothing waits for it, which the API answers 404.
    assert _statuses(replies) == {200: 1, 404: THREADS - 1}, [r.body for r in replies]
    assert _audit(db, "message.delivered", instance_id) == 1
    ship = db.rows(
        "SELECT status FROM human_tasks WHERE instance_id = :i AND bpmn_id = 'ship'",
        i=instance_id,
    )
    assert ship == [{"status": "ready"}]
    _assert_chain_whole(db)


def test_tasks_of_different_instances_complete_in_parallel(system):
    db: Database = system["system"].db
    client = _client(system)
    instance_ids = [_start(client, "sys_two_tasks") for _ in range(THREADS)]
    tasks = [_ready_task(db, instance_id, "work") for instance_id in instance_ids]

    replies = _at_once(
        THREADS,
        lambda i: _client(system, CALLERS[i]).post(
            f"/api/v1/tasks/{tasks[i]}/complete", {"data": {}}
        ),
    )

    assert _statuses(replies) == {200: THREADS}, [r.body for r in replies]
    for instance_id in instance_ids:
        assert _ready_task(db, instance_id, "check")
        assert _audit(db, "task.completed", instance_id) == 1
    _assert_chain_whole(db)
