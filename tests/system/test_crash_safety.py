"""SIGKILL the service in the middle of webhook deliveries and task completions.

What a client was told (a 202 or a 200) must be there after the restart, nothing
may be applied twice when clients repeat what got no answer, and a deadline that
came due while everything was down fires once the scheduler is back. Runs on the
suite's database kind: a SQLite file, or a PostgreSQL database of its own.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from app.services import signatures
from tests.system import processes
from tests.system.service import Database, Deployment, Http, deployment, wait_for

TIMER_SECONDS = 3
ENOUGH_DELIVERIES, ENOUGH_COMPLETIONS = 12, 5


@dataclass
class Stream:
    """What the clients sent, and what the service acknowledged."""

    stop: threading.Event = field(default_factory=threading.Event)
    sent_keys: list[str] = field(default_factory=list)
    # Idempotency-Key -> the instance the 202 named.
    acked_deliveries: dict[str, str] = field(default_factory=dict)
    tried_completions: set[str] = field(default_factory=set)
    acked_completions: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("crash")
    files = processes.files(TIMER_SECONDS)
    with deployment("crash", folder, ["ops"], files, SCHEDULER_POLL_SECONDS="1") as (
        system,
        seeded,
    ):
        yield {"system": system, "token": seeded.tokens["ops"]}


def _endpoint(api: Http) -> str:
    reply = api.post(
        "/api/v1/webhooks/endpoints",
        {
            "name": "intake",
            "action": "start_process",
            "process_id": "sys_two_tasks",
            "data_fields": {"ref": "ref"},
            "business_key_field": "ref",
        },
    )
    assert reply.status == 201, reply.body
    return reply.body["secret"]


def _deliver(base: str, secret: str, key: str) -> Any:
    body = json.dumps({"ref": key}).encode()
    headers = {
        **signatures.headers(secret, int(time.time()), body),
        "Idempotency-Key": key,
    }
    return Http(base, timeout=10).post("/webhooks/intake", body, headers)


def _deliveries(base: str, secret: str, stream: Stream) -> None:
    """Send deliveries one after another until the service stops answering."""
    for i in range(10_000):
        if stream.stop.is_set():
            return
        key = f"ref-{i}"
        stream.sent_keys.append(key)
        try:
            reply = _deliver(base, secret, key)
        except OSError:
            return
        if reply.status == 202:
            stream.acked_deliveries[key] = reply.body["instance_id"]
        else:
            stream.errors.append(f"delivery {key}: {reply.status} {reply.body}")


def _completions(api: Http, db: Database, stream: Stream) -> None:
    """Complete the first task of each started instance, as they appear."""
    while not stream.stop.is_set():
        ready = db.rows(
            "SELECT task_guid FROM human_tasks WHERE bpmn_id = 'work' "
            "AND status = 'ready' ORDER BY created_at LIMIT 5"
        )
        for row in ready:
            task = row["task_guid"]
            stream.tried_completions.add(task)
            try:
                reply = api.post(f"/api/v1/tasks/{task}/complete", {"data": {}})
            except OSError:
                return
            if reply.status == 200:
                stream.acked_completions.add(task)
            elif reply.status != 409:
                stream.errors.append(f"completion {task}: {reply.status} {reply.body}")
        time.sleep(0.05)


def _pending_timer_due(api: Http, instance_id: str) -> datetime | None:
    reply = api.get(f"/api/v1/instances/{instance_id}/deadlines")
    assert reply.status == 200, reply.body
    due = [d["due_at"] for d in reply.body["items"] if d["state"] == "pending"]
    return datetime.fromisoformat(due[0]) if due else None


def test_a_killed_service_keeps_what_it_acknowledged_and_applies_nothing_twice(
    crashed,
):
    system: Deployment = crashed["system"]
    db = system.db
    web = system.web("web", workers=2)
    scheduler = system.scheduler("scheduler")
    api = Http(web.url, crashed["token"])
    secret = _endpoint(api)
    stream = Stream()
    threads = [
        threading.Thread(target=_deliveries, args=(web.url, secret, stream)),
        threading.Thread(target=_completions, args=(api, db, stream)),
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: (
                len(stream.acked_deliveries) >= ENOUGH_DELIVERIES
                and len(stream.acked_completions) >= ENOUGH_COMPLETIONS
            ),
            "deliveries and completions to be acknowledged",
            web,
        )
        # A timer starts; everything goes down before it is due.
        timer = api.post("/api/v1/instances", {"process_id": "sys_timer"})
        assert timer.status == 201, timer.body
        timer_id = timer.body["id"]
        due = _pending_timer_due(api, timer_id)
        scheduler.kill()
        web.kill()
    finally:
        stream.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not stream.errors
    assert due is not None, "the timer fired before the kill"
    wait_for(lambda: datetime.now(UTC) > due, "the timer to come due while all is down")
    web.start()
    scheduler.start()

    _assert_acknowledged_deliveries_stored(db, stream)
    _assert_repeats_start_nothing_twice(web.url, secret, db, stream)
    _assert_acknowledged_completions_kept(api, db, stream)
    _assert_missed_timer_fires_once(db, timer_id, scheduler)
    _assert_chain_whole(db)


def _assert_acknowledged_deliveries_stored(db: Database, stream: Stream) -> None:
    stored = {
        row["idempotency_key"]: row
        for row in db.rows(
            "SELECT idempotency_key, status, instance_id FROM webhook_deliveries"
        )
    }
    for key, instance_id in stream.acked_deliveries.items():
        assert stored[key]["status"] == "processed", key
        assert stored[key]["instance_id"] == instance_id, key


def _assert_repeats_start_nothing_twice(
    base: str, secret: str, db: Database, stream: Stream
) -> None:
    # A sender repeats every request (answered or not) with its key, as senders do.
    for key in stream.sent_keys:
        reply = _deliver(base, secret, key)
        assert reply.status == 202, (key, reply.body)
        if key in stream.acked_deliveries:
            assert reply.body["instance_id"] == stream.acked_deliveries[key]
    per_key = db.rows(
        "SELECT business_key, count(*) AS n FROM instances "
        "WHERE bpmn_process_id = 'sys_two_tasks' GROUP BY business_key"
    )
    assert {row["business_key"] for row in per_key} == set(stream.sent_keys)
    assert {row["n"] for row in per_key} == {1}


def _assert_acknowledged_completions_kept(
    api: Http, db: Database, stream: Stream
) -> None:
    for task in stream.acked_completions:
        row = db.rows(
            "SELECT t.status, t.instance_id FROM human_tasks t WHERE task_guid = :t",
            t=task,
        )[0]
        assert row["status"] == "completed", task
        assert db.task_status(row["instance_id"], "check") == "ready", task
        # A client repeating an acknowledged completion is told it is done.
        assert api.post(f"/api/v1/tasks/{task}/complete", {"data": {}}).status == 409
    twice = db.rows(
        "SELECT task_guid FROM audit_events WHERE action = 'task.completed' "
        "GROUP BY task_guid HAVING count(*) > 1"
    )
    assert twice == []
    # A completion that got no answer either happened entirely or not at all.
    for task in stream.tried_completions - stream.acked_completions:
        status = db.scalar(
            "SELECT status FROM human_tasks WHERE task_guid = :t", t=task
        )
        audited = db.scalar(
            "SELECT count(*) FROM audit_events "
            "WHERE action = 'task.completed' AND task_guid = :t",
            t=task,
        )
        assert (status, audited) in {("ready", 0), ("completed", 1)}, task


def _assert_missed_timer_fires_once(
    db: Database, timer_id: str, scheduler: Any
) -> None:
    wait_for(
        lambda: db.task_status(timer_id, "after") == "ready",
        "the missed timer to fire after the restart",
        scheduler,
    )
    fired = db.rows(
        "SELECT state FROM deadlines WHERE instance_id = :i AND kind = 'bpmn_timer'",
        i=timer_id,
    )
    assert fired == [{"state": "fired"}]
    events = db.scalar(
        "SELECT count(*) FROM audit_events "
        "WHERE action = 'deadline.fired' AND instance_id = :i",
        i=timer_id,
    )
    assert events == 1


def _assert_chain_whole(db: Database) -> None:
    rows = db.rows("SELECT prev_sha256, sha256 FROM audit_events ORDER BY id")
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["prev_sha256"] == before["sha256"]
