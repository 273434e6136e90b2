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


def _newest(count: int = 1) -> list[AuditEvent]:
    return db.session.scalars(
        select(AuditEvent).order_by(AuditEvent.id.desc()).limit(count)
    ).all()


def test_verify_reports_the_head_to_keep_as_an_anchor(app, some_history):
    with app.app_context():
        report = audit.verify()
        newest = _newest()[0]

    assert report.head == f"{newest.id}:{newest.sha256}"


def test_removing_the_newest_events_is_found_through_an_anchor(app, some_history):
    with app.app_context():
        anchor = audit.Anchor.parse(audit.verify().head)
        for event in _newest(2):
            db.session.delete(event)
        db.session.commit()

        unanchored = audit.verify()
        anchored = audit.verify(anchors=(anchor,))

    assert unanchored.ok
    assert not anchored.ok
    assert anchored.reason == "anchored event removed"
    assert anchored.first_bad_id == anchor.event_id


def test_a_chain_rebuilt_after_the_anchor_is_found(app, some_history):
    with app.app_context():
        anchor = audit.Anchor.parse(audit.verify().head)
        newest = _newest()[0]
        newest.details = {"rewritten": True}
        newest.sha256 = audit.digest(newest)
        db.session.commit()

        report = audit.verify(anchors=(anchor,))

    assert not report.ok
    assert report.reason == "differs from its anchor"


def test_an_anchor_still_in_the_chain_passes(app, some_history, start_instance):
    with app.app_context():
        anchor = audit.Anchor.parse(audit.verify().head)
    start_instance()
    with app.app_context():
        report = audit.verify(anchors=(anchor,))

    assert report.ok
    assert report.head_id > anchor.event_id


@pytest.mark.parametrize("value", ["12", "x:" + "a" * 64, "12:abc"])
def test_an_anchor_must_read_id_colon_hash(value):
    with pytest.raises(ValueError, match="ID:SHA256"):
        audit.Anchor.parse(value)


def test_the_command_checks_anchors(app, some_history):
    cli = app.test_cli_runner()
    first = cli.invoke(args=["audit", "verify"])
    head = first.stdout.split("head: ")[1].strip()
    with app.app_context():
        db.session.delete(_newest()[0])
        db.session.commit()

    result = cli.invoke(args=["audit", "verify", "--anchor", head])
    bad = cli.invoke(args=["audit", "verify", "--anchor", "nonsense"])

    assert first.exit_code == 0
    assert result.exit_code == 1
    assert "anchored event removed" in result.stderr
    assert bad.exit_code == 2
    assert "ID:SHA256" in bad.stderr


def test_events_name_fields_never_values(app, review_process, start_instance):
    start_instance(data={"summary": "Jane Doe, born 1980-02-03"}, business_key="K")

    with app.app_context():
        details = [e.details for e in db.session.scalars(select(AuditEvent))]

    assert "Jane" not in str(details)
    assert any(d.get("input_fields") == ["summary"] for d in details)
