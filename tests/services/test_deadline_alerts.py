"""Reminders and missed deadlines reach people by mail, with no subscriber needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.extensions import db
from app.models import User
from app.services import scheduler
from tests.conftest import DATA

REQUEST = (DATA / "request_deadline.bpmn").read_bytes()
RECEIVED = "2026-03-02T10:00:00+01:00"
SUBJECT_NAME = "Jane Roe-Verhoeven"
SUBJECT_EMAIL = "jane.roe@private.example"
# The reminder falls five working days before the reply's end on 2 April 2026.
REMINDER_DUE = datetime(2026, 3, 27, 9, tzinfo=UTC)
PAST_THE_DEADLINE = datetime(2026, 4, 3, 8, tzinfo=UTC)


@pytest.fixture
def staff(admin):
    """Make users through the admin API; name, roles and an optional address."""

    def make(name, *roles, email=None):
        body = {"name": name, "roles": list(roles)}
        if email is not None:
            body["email"] = email
        reply = admin.post("/api/v1/users", json=body)
        assert reply.status_code == 201, reply.get_json()
        return reply.get_json()

    return make


@pytest.fixture
def started(frozen_clock, deploy, start_instance):
    """Start a request on the given diagram, with a subject's name in its data."""

    def start(bpmn=REQUEST, process_id="request_deadline"):
        assert deploy(bpmn, f"{process_id}.bpmn").status_code == 201
        data = {
            "received_at": RECEIVED,
            "subject_name": SUBJECT_NAME,
            "subject_email": SUBJECT_EMAIL,
        }
        return start_instance(process_id, data=data, business_key="REQ-2026-7")

    return start


def owned_by(role: str) -> bytes:
    """The request diagram with its legal deadline set for another role."""
    article = b'<spiffworkflow:parameter id="article"'
    parameter = (
        f'<spiffworkflow:parameter id="role" type="str" value="&quot;{role}&quot;" />'
    )
    return REQUEST.replace(article, parameter.encode() + article)


def _sweep(app, at):
    with app.app_context():
        return scheduler.sweep(at)


def _outbox(officer, subject_starts=""):
    items = officer.get("/api/v1/mail?page_size=100").get_json()["items"]
    return [item for item in items if item["subject"].startswith(subject_starts)]


def _recipients(officer, subject_starts=""):
    return sorted(item["to"] for item in _outbox(officer, subject_starts))


def test_a_reminder_mails_each_active_dpo_with_an_address_once(
    app, staff, started, officer
):
    staff("dina", "dpo", email="dina@example.org")
    staff("dmitri", "dpo", "admin", email="dmitri@example.org")
    staff("dora_no_address", "dpo")
    staff("otto", "privacy_officer", email="otto@example.org")
    gone = staff("gerrit", "dpo", email="gerrit@example.org")
    with app.app_context():
        db.session.get(User, gone["id"]).active = False
        db.session.commit()
    started()

    first = _sweep(app, REMINDER_DUE)
    second = _sweep(app, REMINDER_DUE + timedelta(hours=1))

    assert (first.fired, second.fired) == (1, 0)
    assert _recipients(officer) == ["dina@example.org", "dmitri@example.org"]


def test_a_reminder_for_another_role_reaches_that_role_only(
    app, staff, started, officer
):
    staff("dina", "dpo", email="dina@example.org")
    staff("otto", "privacy_officer", email="otto@example.org")
    staff("olly_no_address", "privacy_officer")
    started(owned_by("privacy_officer"))

    _sweep(app, REMINDER_DUE)

    assert _recipients(officer) == ["otto@example.org"]


def test_a_missed_deadline_mails_the_dpos_without_any_subscriber(
    app, staff, started, officer
):
    staff("dina", "dpo", email="dina@example.org")
    staff("otto", "privacy_officer", email="otto@example.org")
    started()

    report = _sweep(app, PAST_THE_DEADLINE)

    assert report.fired == 4
    assert _recipients(officer, "Deadline missed") == ["dina@example.org"]
    # The reminder and the target each told the dpo once too.
    assert _recipients(officer, "Deadline reminder") == ["dina@example.org"] * 2
    assert len(_outbox(officer)) == 3


def test_a_missed_deadline_of_another_role_reaches_that_role_and_the_dpos(
    app, staff, started, officer
):
    staff("dina", "dpo", email="dina@example.org")
    staff("otto", "privacy_officer", email="otto@example.org")
    staff("pia", "privacy_officer", "dpo", email="pia@example.org")
    started(owned_by("privacy_officer"))

    _sweep(app, PAST_THE_DEADLINE)

    assert _recipients(officer, "Deadline missed") == [
        "dina@example.org",
        "otto@example.org",
        "pia@example.org",
    ]


def test_an_escalation_nobody_can_receive_goes_to_the_dpo_email_setting(
    app, staff, started, officer, monkeypatch
):
    monkeypatch.setitem(app.config, "DPO_EMAIL", "privacy-office@example.org")
    staff("dora_no_address", "dpo")
    staff("otto", "privacy_officer", email="otto@example.org")
    started()

    _sweep(app, PAST_THE_DEADLINE)

    # Reminders have no fallback: only the missed legal deadline is mailed.
    assert _recipients(officer) == ["privacy-office@example.org"]
    assert _outbox(officer)[0]["subject"].startswith("Deadline missed")


def test_a_malformed_dpo_email_setting_leaves_the_firing_intact(
    app, started, officer, monkeypatch
):
    monkeypatch.setitem(app.config, "DPO_EMAIL", "not an address")
    instance = started()

    report = _sweep(app, PAST_THE_DEADLINE)

    assert (report.fired, report.failed) == (4, 0)
    assert _outbox(officer) == []
    found = officer.get(f"/api/v1/instances/{instance['id']}/deadlines").get_json()
    assert {item["name"]: item["state"] for item in found["items"]}["reply"] == "fired"


def test_the_alert_names_case_rule_and_due_time_and_no_subject_data(
    app, staff, started, officer
):
    staff("dina", "dpo", email="dina@example.org")
    instance = started()

    _sweep(app, REMINDER_DUE)

    [listed] = _outbox(officer)
    message = officer.get(f"/api/v1/mail/{listed['id']}").get_json()
    assert message["instance_id"] == instance["id"]
    assert message["subject"] == (
        "Deadline reminder: 'reply' of Request with a legal deadline, "
        "case REQ-2026-7, due in 6 days"
    )
    text = message["body_text"]
    for expected in (
        "Request with a legal deadline",
        f"Instance: {instance['id']}",
        "Case reference: REQ-2026-7",
        "Deadline: reply (legal deadline)",
        "reminder 'reply.reminder'",
        "Art 12(3)",
        "period P1M",
        "Due: 2 April 2026, 23:59 CEST, due in 6 days",
        f"/instances/{instance['id']}",
    ):
        assert expected in text
    for private in (SUBJECT_NAME, SUBJECT_EMAIL, "Jane"):
        assert private not in text
        assert private not in message["body_html"]
        assert private not in message["subject"]


def test_a_missed_deadline_says_how_long_it_is_overdue(app, staff, started, officer):
    staff("dina", "dpo", email="dina@example.org")
    started()

    _sweep(app, datetime(2026, 4, 5, 8, tzinfo=UTC))

    [missed] = _outbox(officer, "Deadline missed")
    text = officer.get(f"/api/v1/mail/{missed['id']}").get_json()["body_text"]
    assert "The legal deadline 'reply' has passed unmet." in text
    assert "Due: 2 April 2026, 23:59 CEST, overdue by 2 days" in text


def test_a_firing_that_fails_mails_once_when_it_is_retried(
    app, staff, started, officer, monkeypatch
):
    staff("dina", "dpo", email="dina@example.org")
    staff("dmitri", "dpo", email="dmitri@example.org")
    started()
    real_emit = scheduler.events.emit
    calls = []

    def emit_failing_once(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 1:
            raise RuntimeError("outbound table unavailable")
        return real_emit(*args, **kwargs)

    monkeypatch.setattr(scheduler.events, "emit", emit_failing_once)

    failed = _sweep(app, REMINDER_DUE)
    assert (failed.fired, failed.failed) == (0, 1)
    assert _outbox(officer) == []
    retried = _sweep(app, REMINDER_DUE + timedelta(minutes=3))
    again = _sweep(app, REMINDER_DUE + timedelta(hours=2))

    assert (retried.fired, again.fired) == (1, 0)
    assert _recipients(officer) == ["dina@example.org", "dmitri@example.org"]


def test_staff_addresses_stay_out_of_the_service_log(app, staff, started, caplog):
    staff("dina", "dpo", email="dina@example.org")
    started()

    with caplog.at_level("DEBUG"):
        _sweep(app, PAST_THE_DEADLINE)

    assert "alert mails queued" in caplog.text
    assert "dina@example.org" not in caplog.text
