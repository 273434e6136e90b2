"""The breach process and register end to end: Art 33 and 34, with time moved."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboundEvent
from app.services import definitions, forms, letters, scheduler
from tests.conftest import ROOT

PROCESS = "personal_data_breach"
# The frozen clock stands at 2026-03-02 09:00 UTC; awareness came at 07:30 UTC.
AWARE_AT = "2026-03-02T08:30:00+01:00"
DUE_AT = datetime(2026, 3, 5, 7, 30, tzinfo=UTC)

ASSESSMENT = {
    "breach_types": ["confidentiality"],
    "data_categories": ["user.contact.email", "user.name"],
    "subject_categories": ["customers"],
    "approximate_subjects": 1200,
    "approximate_records": 1500,
    "special_categories": False,
    "vulnerable_subjects": [],
    "ease_of_identification": "significant",
    "severity": "medium",
    "permanence": "temporary",
    "likely_consequences": "Phishing e-mails to the customers concerned.",
    "measures": "Mailbox password reset; forwarding rule removed.",
    "outcome": "risk",
}
NOTIFICATION = {
    "nature": "A mailbox forwarded customer e-mails to an outside address.",
    "subject_categories": ["customers"],
    "approximate_subjects": 1200,
    "data_categories": ["user.contact.email", "user.name"],
    "approximate_records": 1500,
    "contact_name": "Data-protection officer",
    "contact_email": "dpo@example.org",
    "likely_consequences": "Phishing e-mails to the customers concerned.",
    "measures": "Mailbox password reset; forwarding rule removed.",
}
COMMUNICATION = {
    "method": "communication",
    "message": "Someone outside our company could read e-mails you sent us.",
    "contact_point": "dpo@example.org, 020 123 4567",
    "likely_consequences": "You may get e-mails that pretend to come from us.",
    "measures": "We closed the access. Do not open links in unexpected e-mails.",
    "channel": "email",
    "subjects_reached": 1180,
}


@pytest.fixture
def breach_process(app):
    """The bundled breach process with its forms and letters, as `make run` has them."""
    with app.app_context():
        for path in sorted((ROOT / "forms").glob("breach_*.json")):
            forms.deploy_form(path.stem, json.loads(path.read_text()))
        shown = sorted((ROOT / "letters").glob("breach_*.html"))
        for path in [ROOT / "letters" / "letterhead.html", *shown]:
            letters.deploy_template(path.stem, path.read_text())
        bpmn = ROOT / "workflows" / f"{PROCESS}.bpmn"
        definitions.deploy(bpmn.read_bytes(), bpmn.name)
        db.session.commit()


def _start(officer, **data):
    body = {"aware_at": AWARE_AT, "summary": "Mailbox forwarding", **data}
    return officer.post("/api/v1/instances", json={"process_id": PROCESS, "data": body})


@pytest.fixture
def breach(frozen_clock, breach_process, officer):
    """A registered breach: its instance and register entry."""
    reply = _start(officer, detected_by="IT service desk")
    assert reply.status_code == 201, reply.get_json()
    instance = reply.get_json()
    return instance, _entry_of(officer, instance["id"])


def _entry_of(caller, instance_id):
    items = caller.get("/api/v1/breaches?page_size=200").get_json()["items"]
    return next(item for item in items if item["instance_id"] == instance_id)


def _entry(caller, entry):
    return caller.get(f"/api/v1/breaches/{entry['id']}").get_json()


def _task(caller, instance_id, bpmn_id):
    items = caller.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"]
    found = [task for task in items if task["bpmn_id"] == bpmn_id]
    assert found, [task["bpmn_id"] for task in items]
    return found[0]


def _complete(caller, instance_id, bpmn_id, data):
    task = _task(caller, instance_id, bpmn_id)
    return caller.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data})


def _assessed(officer, instance_id, **changes):
    reply = _complete(officer, instance_id, "assess", {**ASSESSMENT, **changes})
    assert reply.status_code == 200, reply.get_json()


def _notified(dpo, instance_id, **changes):
    reply = _complete(dpo, instance_id, "notify_authority", {**NOTIFICATION, **changes})
    assert reply.status_code == 200, reply.get_json()


def _deadlines(caller, instance_id):
    reply = caller.get(f"/api/v1/instances/{instance_id}/deadlines").get_json()
    return {item["name"]: item for item in reply["items"]}


def _status(caller, instance_id):
    return caller.get(f"/api/v1/instances/{instance_id}").get_json()["status"]


def test_a_started_breach_is_registered_with_its_72_hour_deadline(breach, officer):
    instance, entry = breach

    assert entry["reference"] == "BR-2026-0001"
    assert entry["aware_at"] == "2026-03-02T07:30:00+00:00"
    assert entry["registered_at"] == "2026-03-02T09:00:00+00:00"
    assert entry["authority_due_at"] == DUE_AT.isoformat()
    found = _deadlines(officer, instance["id"])
    assert found["authority"]["due_at"] == DUE_AT.isoformat()
    assert found["authority"]["rule"]["article"] == "Art 33(1)"
    assert found["authority.reminder"]["due_at"] == "2026-03-04T07:30:00+00:00"
    assert instance["business_key"] == "BR-2026-0001"


def test_a_breach_notified_in_time_meets_the_deadline(
    breach, frozen_clock, officer, dpo
):
    instance, entry = breach
    _assessed(officer, instance["id"])
    frozen_clock.advance(hours=30)

    _notified(dpo, instance["id"])

    shown = _entry(dpo, entry)
    assert shown["notified_at"] == "2026-03-03T15:00:00+00:00"
    assert shown["notified_late"] is False
    assert shown["delay_reasons"] is None
    assert shown["authority_notification"]["approximate_subjects"] == 1200
    assert shown["notification_required"] == {"authority": True, "subjects": False}
    found = _deadlines(dpo, instance["id"])
    assert found["authority"]["state"] == "met"
    assert found["authority.reminder"]["state"] == "cancelled"
    assert _task(dpo, instance["id"], "further_information")


def test_the_notification_form_starts_from_the_assessment(breach, officer, dpo):
    instance, _ = breach
    _assessed(officer, instance["id"])
    task = _task(dpo, instance["id"], "notify_authority")

    shown = dpo.get(f"/api/v1/tasks/{task['id']}").get_json()

    assert shown["form"] == "breach_authority_notification"
    assert shown["data"]["reference"] == "BR-2026-0001"
    assert datetime.fromisoformat(shown["data"]["authority_due_at"]) == DUE_AT
    assert shown["data"]["approximate_records"] == 1500
    assert shown["data"]["measures"] == ASSESSMENT["measures"]
    assert "Art 33(3)" in json.dumps(shown["form_schema"])


def _letter_html(caller, entry, kind):
    kept = [item for item in _entry(caller, entry)["letters"] if item["kind"] == kind]
    assert len(kept) == 1, kept
    reply = caller.get(f"/api/v1/letters/{kept[0]['letter_id']}/html")
    assert reply.status_code == 200
    return reply.get_data(as_text=True)


def test_the_notification_document_carries_the_art_33_3_contents(
    breach, frozen_clock, officer, dpo
):
    instance, entry = breach
    _assessed(officer, instance["id"])

    _notified(dpo, instance["id"])

    html = _letter_html(dpo, entry, "authority_notification")
    assert "BR-2026-0001" in html
    assert NOTIFICATION["nature"] in html
    assert "1200" in html and "1500" in html
    assert "dpo@example.org" in html
    assert "Reasons for the delay" not in html


@pytest.mark.parametrize(
    "left_out",
    [
        "nature",
        "approximate_subjects",
        "approximate_records",
        "contact_name",
        "likely_consequences",
        "measures",
    ],
)
def test_the_authority_form_needs_every_art_33_3_content(
    breach, officer, dpo, left_out
):
    instance, entry = breach
    _assessed(officer, instance["id"])
    incomplete = {k: v for k, v in NOTIFICATION.items() if k != left_out}

    reply = _complete(dpo, instance["id"], "notify_authority", incomplete)

    assert reply.status_code == 422
    assert reply.get_json()["errors"] == [{"field": left_out, "message": "is required"}]
    assert _entry(dpo, entry)["notified_at"] is None


def test_a_late_notification_is_refused_without_the_reasons_for_the_delay(
    app, breach, frozen_clock, officer, dpo
):
    instance, entry = breach
    _assessed(officer, instance["id"])
    frozen_clock.advance(hours=73)
    with app.app_context():
        scheduler.sweep()

    reply = _complete(dpo, instance["id"], "notify_authority", NOTIFICATION)

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "breach-notification-late"
    assert "Art 33(1)" in problem["detail"]
    assert [error["field"] for error in problem["errors"]] == ["delay_reasons"]
    assert _entry(dpo, entry)["notified_at"] is None
    assert _task(dpo, instance["id"], "notify_authority")["status"] == "ready"


def test_a_late_notification_with_reasons_is_accepted_and_marked_late(
    app, breach, frozen_clock, officer, dpo
):
    instance, entry = breach
    _assessed(officer, instance["id"])
    frozen_clock.advance(hours=73)
    with app.app_context():
        scheduler.sweep()
    reasons = "The forwarding rule was found only in the weekly mailbox audit."

    _notified(dpo, instance["id"], delay_reasons=reasons)

    shown = _entry(dpo, entry)
    assert shown["notified_late"] is True
    assert shown["delay_reasons"] == reasons
    assert _deadlines(dpo, instance["id"])["authority"]["state"] == "fired"
    html = _letter_html(dpo, entry, "authority_notification")
    assert "Reasons for the delay (Art 33(1))" in html
    assert reasons in html


def test_a_no_risk_breach_stays_in_the_register_with_its_reason(breach, officer, dpo):
    instance, entry = breach
    reason = "The laptop was encrypted (full-disk, key not compromised)."

    _assessed(officer, instance["id"], outcome="no_risk", no_notification_reason=reason)

    assert _status(officer, instance["id"]) == "completed"
    shown = _entry(dpo, entry)
    assert shown["outcome"] == "no_risk"
    assert shown["no_notification_reason"] == reason
    assert shown["notified_at"] is None
    assert shown["status"] == "closed"
    assert shown["notification_required"] == {"authority": False, "subjects": False}
    assert _deadlines(dpo, instance["id"])["authority"]["state"] == "cancelled"
    rows = list(csv.DictReader(io.StringIO(_csv(dpo))))
    assert [row["reference"] for row in rows] == [entry["reference"]]
    assert rows[0]["no_notification_reason"] == reason
    assert rows[0]["notified_at"] == ""


def test_no_risk_without_a_reason_is_refused_and_changes_nothing(breach, officer, dpo):
    instance, entry = breach

    reply = _complete(
        officer, instance["id"], "assess", {**ASSESSMENT, "outcome": "no_risk"}
    )

    assert reply.status_code == 422
    fields = [error["field"] for error in reply.get_json()["errors"]]
    assert fields == ["no_notification_reason"]
    assert _entry(dpo, entry)["outcome"] is None
    assert _task(officer, instance["id"], "assess")["status"] == "ready"


def _csv(caller):
    reply = caller.get("/api/v1/breaches/export.csv")
    assert reply.status_code == 200
    assert reply.mimetype == "text/csv"
    return reply.get_data(as_text=True)


@pytest.mark.parametrize(
    ("aware_at", "message"),
    [
        ("2026-03-02T11:00:00+01:00", "cannot be in the future"),
        ("2026-03-02T08:00:00", "needs a time zone"),
        ("yesterday", "is not an ISO 8601 date-time"),
        (None, "is required"),
    ],
)
def test_an_awareness_time_that_cannot_start_the_72_hours_is_refused(
    frozen_clock, breach_process, officer, aware_at, message
):
    reply = _start(officer, aware_at=aware_at)

    assert reply.status_code == 422
    problem = reply.get_json()
    assert "Art 33(1)" in problem["detail"]
    assert problem["errors"][0]["field"] == "aware_at"
    assert message in problem["errors"][0]["message"]
    assert officer.get("/api/v1/instances").get_json()["total"] == 0
    assert officer.get("/api/v1/breaches").get_json()["total"] == 0


def _high_risk(officer, dpo, instance_id):
    _assessed(officer, instance_id, outcome="high_risk")
    _notified(dpo, instance_id)


def test_an_exemption_without_evidence_is_refused_naming_art_34_3(breach, officer, dpo):
    instance, entry = breach
    _high_risk(officer, dpo, instance["id"])

    reply = _complete(
        officer,
        instance["id"],
        "communicate",
        {"method": "exemption", "exemption": "a"},
    )

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "breach-exemption-without-evidence"
    assert "Art 34(3)" in problem["detail"]
    assert problem["errors"] == [
        {"field": "evidence", "message": "is required for an exemption under Art 34(3)"}
    ]
    assert _entry(dpo, entry)["exemption"] is None
    assert _task(officer, instance["id"], "communicate")["status"] == "ready"


def test_an_exemption_with_evidence_is_recorded_instead_of_a_communication(
    breach, officer, dpo
):
    instance, entry = breach
    _high_risk(officer, dpo, instance["id"])
    evidence = "AES-256 full-disk encryption; the key stayed in the HSM (ticket 4411)."

    reply = _complete(
        officer,
        instance["id"],
        "communicate",
        {"method": "exemption", "exemption": "a", "evidence": evidence},
    )

    assert reply.status_code == 200, reply.get_json()
    shown = _entry(dpo, entry)
    assert (shown["exemption"], shown["exemption_evidence"]) == ("a", evidence)
    assert shown["communicated_at"] is None
    assert [item["kind"] for item in shown["letters"]] == ["authority_notification"]
    assert _task(dpo, instance["id"], "further_information")


def test_exemption_c_needs_the_public_communication_made_instead(breach, officer, dpo):
    instance, _ = breach
    _high_risk(officer, dpo, instance["id"])

    reply = _complete(
        officer,
        instance["id"],
        "communicate",
        {"method": "exemption", "exemption": "c", "evidence": "40,000 old addresses"},
    )

    assert reply.status_code == 422
    assert reply.get_json()["errors"][0]["field"] == "public_communication"
    assert "Art 34(3)(c)" in reply.get_json()["detail"]


def test_a_high_risk_breach_is_communicated_to_the_subjects(breach, officer, dpo):
    instance, entry = breach
    _high_risk(officer, dpo, instance["id"])

    reply = _complete(officer, instance["id"], "communicate", COMMUNICATION)

    assert reply.status_code == 200, reply.get_json()
    shown = _entry(dpo, entry)
    assert shown["notification_required"] == {"authority": True, "subjects": True}
    assert shown["subject_communication"]["subjects_reached"] == 1180
    assert shown["communicated_at"] == "2026-03-02T09:00:00+00:00"
    html = _letter_html(dpo, entry, "subject_communication")
    assert COMMUNICATION["message"] in html
    assert "dpo@example.org, 020 123 4567" in html


def test_a_communication_without_its_art_34_2_contents_is_refused(breach, officer, dpo):
    instance, _ = breach
    _high_risk(officer, dpo, instance["id"])

    reply = _complete(
        officer, instance["id"], "communicate", {"method": "communication"}
    )

    assert reply.status_code == 422
    fields = {error["field"] for error in reply.get_json()["errors"]}
    assert {"message", "contact_point", "channel", "subjects_reached"} <= fields


def test_later_phases_are_appended_and_the_first_notification_kept(
    breach, frozen_clock, officer, dpo
):
    instance, entry = breach
    _assessed(officer, instance["id"])
    _notified(dpo, instance["id"])
    frozen_clock.advance(days=2)
    first = "Forensics: the rule was active for 9 days."
    _complete(
        dpo,
        instance["id"],
        "further_information",
        {"information": first, "complete": False},
    )
    frozen_clock.advance(days=1)
    second = "All 1,200 customers were identified; 40 clicked a link."

    reply = _complete(
        dpo,
        instance["id"],
        "further_information",
        {"information": second, "complete": True},
    )

    assert reply.status_code == 200, reply.get_json()
    shown = _entry(dpo, entry)
    assert [p["information"] for p in shown["phases"]] == [first, second]
    assert [p["number"] for p in shown["phases"]] == [1, 2]
    assert shown["phases"][0]["added_at"] == "2026-03-04T09:00:00+00:00"
    assert shown["authority_notification"]["nature"] == NOTIFICATION["nature"]
    assert shown["status"] == "closed"
    assert _status(dpo, instance["id"]) == "completed"


def test_an_empty_phase_that_is_not_complete_is_refused(breach, officer, dpo):
    instance, _ = breach
    _assessed(officer, instance["id"])
    _notified(dpo, instance["id"])

    reply = _complete(dpo, instance["id"], "further_information", {"complete": False})

    assert reply.status_code == 422
    assert reply.get_json()["errors"][0]["field"] == "information"


def test_the_reminder_fires_before_the_authority_deadline(
    app, breach, frozen_clock, admin
):
    subscribed = admin.post(
        "/api/v1/subscribers",
        json={"url": "https://hooks.example/gdpr", "event_types": ["*"]},
    )
    assert subscribed.status_code == 201
    instance, _ = breach
    frozen_clock.at = DUE_AT - timedelta(hours=23)

    with app.app_context():
        report = scheduler.sweep()
        sent = db.session.scalars(select(OutboundEvent)).all()
        approaching = [
            event.payload
            for event in sent
            if event.event_type == "deadline.approaching"
        ]
        missed = [e for e in sent if e.event_type == "deadline.missed"]

    assert report.fired == 1
    assert approaching == [
        {
            "instance_id": instance["id"],
            "deadline": "authority.reminder",
            "kind": "reminder",
            "due_at": "2026-03-04T07:30:00+00:00",
            "article": "Art 33(1)",
            "role": "dpo",
        }
    ]
    assert missed == []


def test_the_register_lists_newest_first_or_soonest_due(
    frozen_clock, breach_process, officer
):
    _start(officer, aware_at="2026-03-01T12:00:00+00:00", summary="Lost USB stick")
    frozen_clock.advance(hours=1)
    _start(officer, aware_at="2026-02-28T12:00:00+00:00", summary="Misdirected mail")

    newest = officer.get("/api/v1/breaches").get_json()["items"]
    due = officer.get("/api/v1/breaches?order=due").get_json()["items"]

    assert [b["reference"] for b in newest] == ["BR-2026-0002", "BR-2026-0001"]
    assert [b["summary"] for b in due] == ["Misdirected mail", "Lost USB stick"]


def test_the_export_neutralises_cells_a_spreadsheet_would_run(
    frozen_clock, breach_process, officer, dpo
):
    _start(officer, summary='=HYPERLINK("https://evil.example")')

    rows = list(csv.reader(io.StringIO(_csv(dpo))))

    assert rows[1][rows[0].index("summary")] == '\'=HYPERLINK("https://evil.example")'


@pytest.mark.parametrize(
    "path", ["/api/v1/breaches", "/api/v1/breaches/1", "/api/v1/breaches/export.csv"]
)
def test_a_manager_cannot_read_the_register(breach, make_user, path):
    manager = make_user("max", "manager")

    reply = manager.get(path)

    assert reply.status_code == 403
    assert reply.get_json()["code"] == "role-required"


def test_an_unknown_breach_is_a_404(breach, dpo):
    assert dpo.get("/api/v1/breaches/999").status_code == 404
