"""The audit chain: every change appends; any edit or removal is detected."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from app.services import audit


@pytest.fixture
def some_history(review_process, start_instance, officer):
    instance = start_instance()
    task = officer.get("/api/v1/tasks").get_json()["items"][0]
    officer.post(f"/api/v1/tasks/{task['id']}/claim")
    officer.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {"summary": "s"}}
    )
    return instance


def test_an_untouched_chain_verifies(app, some_history):
    with app.app_context():
        report = audit.verify()

    assert report.ok
    assert report.checked >= 5


def test_each_event_links_to_the_one_before(app, some_history):
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()

    assert events[0].prev_sha256 == audit.GENESIS
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_sha256 == before.sha256


def test_an_edited_event_is_found(app, some_history):
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "task.completed")
        ).one()
        event.actor_id = 999
        db.session.commit()

        report = audit.verify()

    assert not report.ok
    assert report.first_bad_id == event.id
    assert report.reason == "content altered"


def test_a_removed_event_is_found(app, some_history):
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "task.claimed")
        ).one()
        db.session.delete(event)
        db.session.commit()

        report = audit.verify()

    assert not report.ok
    assert report.reason == "link to previous broken"


def test_events_name_fields_never_values(app, review_process, start_instance):
    start_instance(data={"summary": "Jane Doe, born 1980-02-03"}, business_key="K")

    with app.app_context():
        details = [e.details for e in db.session.scalars(select(AuditEvent))]

    assert "Jane" not in str(details)
    assert any(d.get("input_fields") == ["summary"] for d in details)
