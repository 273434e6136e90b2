"""The inbox's queue: keyset pages in due order, deadlines in one query, counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from app.errors import BadRequest, Forbidden
from app.extensions import db
from app.models import Deadline, HumanTask, User
from app.services import tasks

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def instance_id(review_process, start_instance):
    return start_instance()["id"]


def add_tasks(instance_id, dues, created=START, role="privacy_officer"):
    """Queue rows of one instance, one per due time (None: no due time)."""
    for due in dues:
        db.session.add(
            HumanTask(
                task_guid=str(uuid.uuid4()),
                instance_id=instance_id,
                bpmn_process_id="two_step_review",
                bpmn_id="prepare",
                title="Prepare the review",
                role=role,
                status="ready",
                created_at=created,
                due_at=due,
            )
        )
    db.session.commit()


def read_all(user, limit):
    seen, after = [], None
    while True:
        page = tasks.queue_page(user, "privacy_officer", after=after, limit=limit)
        seen.extend(entry.task for entry in page.entries)
        if page.after is None:
            return seen
        after = page.after


def queue_order(task):
    return (task.due_at is None, task.due_at or START, task.created_at, task.task_guid)


def test_paging_reads_every_task_once_in_due_order_with_ties_and_no_due(
    app, instance_id, officer
):
    day = timedelta(days=1)
    with app.app_context():
        # Many equal due times, equal creation times, and tasks with no due time.
        dues = [START + day] * 9 + [START + 2 * day] * 6 + [None] * 7 + [START] * 3
        add_tasks(instance_id, dues)
        add_tasks(instance_id, [START + day, None], created=START - day)
        user = db.session.get(User, officer.user_id)
        everything = db.session.query(HumanTask).filter_by(status="ready").all()

        seen = read_all(user, limit=4)

        assert len(everything) > 4
        assert [t.task_guid for t in seen] == [
            t.task_guid for t in sorted(everything, key=queue_order)
        ]
        assert len({t.task_guid for t in seen}) == len(everything)
        assert seen[-1].due_at is None


def test_the_last_page_has_no_cursor(app, instance_id, officer):
    with app.app_context():
        user = db.session.get(User, officer.user_id)
        page = tasks.queue_page(user, "privacy_officer", limit=5)

        assert len(page.entries) == 1
        assert page.after is None


def test_a_queue_of_a_role_not_held_is_refused(app, instance_id, officer):
    with app.app_context():
        user = db.session.get(User, officer.user_id)
        with pytest.raises(Forbidden):
            tasks.queue_page(user, "dpo")


@pytest.mark.parametrize(
    "cursor", ["nonsense", "~~", "x~y~z", "2026-03-02T09:00:00~2026-03-02T09:00:00~a"]
)
def test_a_broken_cursor_is_a_bad_request(app, instance_id, officer, cursor):
    with app.app_context():
        user = db.session.get(User, officer.user_id)
        with pytest.raises(BadRequest):
            tasks.queue_page(user, "privacy_officer", after=cursor)


def test_deadlines_of_a_page_come_in_one_query(app, review_process, start_instance):
    ids = [start_instance()["id"] for _ in range(3)]
    with app.app_context():
        for number, instance_id in enumerate(ids):
            for kind, days in (("legal", 30), ("internal_target", 25)):
                db.session.add(
                    Deadline(
                        instance_id=instance_id,
                        name=f"answer.{kind}",
                        kind=kind,
                        action="remind",
                        due_at=START + timedelta(days=days + number),
                    )
                )
        db.session.commit()
        user = db.session.query(User).filter_by(name="olga").one()
        statements = []

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            page = tasks.queue_page(user, "privacy_officer")
        finally:
            event.remove(db.engine, "before_cursor_execute", record)

        assert len([s for s in statements if "FROM deadlines" in s]) == 1
        by_instance = {e.task.instance_id: e for e in page.entries}
        assert by_instance[ids[2]].legal_due_at == START + timedelta(days=32)
        assert by_instance[ids[2]].target_due_at == START + timedelta(days=27)


def test_queue_counts_count_each_held_queue(app, instance_id, officer):
    with app.app_context():
        add_tasks(instance_id, [None, None])
        add_tasks(instance_id, [None], role="dpo")
        user = db.session.get(User, officer.user_id)

        assert tasks.queue_counts(user) == {"privacy_officer": 3}


def test_a_long_queue_is_counted_only_up_to_the_limit(
    app, instance_id, officer, monkeypatch
):
    monkeypatch.setattr(tasks, "COUNT_LIMIT", 2)
    with app.app_context():
        add_tasks(instance_id, [None, None, None, None])
        user = db.session.get(User, officer.user_id)

        assert tasks.queue_counts(user) == {"privacy_officer": 3}
