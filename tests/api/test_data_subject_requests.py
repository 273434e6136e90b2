"""Data-subject requests end to end, as a privacy officer and a DPO work them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Restriction, SubjectRequest
from app.registry import sample_data
from app.services import definitions, letters
from tests.conftest import query

ROOT = Path(__file__).parent.parent.parent
ROWS = sample_data.rows()
EMPLOYED = {row["email"] for row in ROWS[sample_data.hr_employees]}
MARKETED = {row["customer_email"] for row in ROWS[sample_data.marketing_segments]}
# A customer (not an employee) with invoices and a marketing segment.
CUSTOMER = next(
    row["email"]
    for row in ROWS[sample_data.crm_customers]
    if row["email"] not in EMPLOYED and row["email"] in MARKETED
)
SUBJECT = {"email": CUSTOMER}
CONFIRMED = {
    "identity_method": "reply_from_address_on_file",
    "identity_outcome": "confirmed",
}


@pytest.fixture
def dsr(app, systems, frozen_clock):
    """The bundled request process with its forms and letters, over fresh systems."""
    with app.app_context():
        definitions.deploy_forms(ROOT / "forms")
        letters.deploy_directory(ROOT / "letters")
        bpmn = ROOT / "workflows" / "data_subject_request.bpmn"
        definitions.deploy(bpmn.read_bytes(), bpmn.name)
        db.session.commit()
    return systems


def start(caller, **data: Any) -> Any:
    return caller.post(
        "/api/v1/instances", json={"process_id": "data_subject_request", "data": data}
    )


def request_of(caller, request_type: str, **data: Any) -> dict[str, Any]:
    data = {
        "request_type": request_type,
        "subject": SUBJECT,
        "channel": "email",
        **data,
    }
    reply = start(caller, **data)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def ready(caller, instance: dict[str, Any], bpmn_id: str) -> list[dict[str, Any]]:
    url = f"/api/v1/tasks?instance_id={instance['id']}&status=ready"
    items = caller.get(url).get_json()["items"]
    return [task for task in items if task["bpmn_id"] == bpmn_id]


def complete(caller, instance: dict[str, Any], bpmn_id: str, **data: Any) -> Any:
    [task] = ready(caller, instance, bpmn_id)
    return caller.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data})


def done(caller, instance: dict[str, Any], bpmn_id: str, **data: Any) -> None:
    reply = complete(caller, instance, bpmn_id, **data)
    assert reply.status_code == 200, reply.get_json()


def verified_and_assessed(caller, instance, decision="proceed", reasons=None) -> None:
    done(caller, instance, "verify_identity", **CONFIRMED)
    extra = {"reasons": reasons} if reasons else {}
    done(caller, instance, "assess_request", decision=decision, **extra)


def letters_of(caller, instance: dict[str, Any]) -> list[dict[str, Any]]:
    url = f"/api/v1/instances/{instance['id']}/letters"
    return caller.get(url).get_json()["items"]


def letter_html(caller, letter: dict[str, Any]) -> str:
    return caller.get(f"/api/v1/letters/{letter['id']}/html").get_data(as_text=True)


def sent_reply(caller, instance: dict[str, Any]) -> list[dict[str, Any]]:
    done(caller, instance, "review_reply", reply_checked=True)
    url = f"/api/v1/mail?instance_id={instance['id']}"
    return caller.get(url).get_json()["items"]


def register_entry(app, instance: dict[str, Any]) -> SubjectRequest:
    with app.app_context():
        return db.session.scalar(
            select(SubjectRequest).where(SubjectRequest.instance_id == instance["id"])
        )


def instance_status(caller, instance: dict[str, Any]) -> str:
    return caller.get(f"/api/v1/instances/{instance['id']}").get_json()["status"]


# --- intake ------------------------------------------------------------------------


def test_a_request_without_a_subject_identity_is_refused_and_not_registered(
    dsr, officer
):
    reply = start(officer, request_type="access", channel="email")

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "subject-identity-missing"
    assert problem["errors"] == [
        {
            "field": "subject",
            "message": 'Give at least one identity, e.g. {"email": ...}.',
        }
    ]
    assert officer.get("/api/v1/instances").get_json()["total"] == 0
    assert officer.get("/api/v1/requests").get_json()["total"] == 0


def test_a_request_received_in_the_future_is_refused_naming_the_article(
    dsr, officer, frozen_clock
):
    later = (frozen_clock() + timedelta(hours=1)).isoformat()

    reply = start(officer, request_type="access", subject=SUBJECT, received_at=later)

    assert reply.status_code == 422
    assert "Art 12(3)" in reply.get_json()["detail"]
    assert officer.get("/api/v1/requests").get_json()["total"] == 0


def test_intake_registers_the_request_and_starts_the_one_month_clock(dsr, officer):
    instance = request_of(officer, "access")

    [entry] = officer.get("/api/v1/requests").get_json()["items"]
    assert entry["reference"] == "DSR-2026-0001"
    assert entry["article"] == "Art 15"
    assert entry["status"] == "open"
    # Received Monday 2 March 2026: one month ends on Thursday 2 April, 23:59 local.
    assert entry["due_at"].startswith("2026-04-02T21:59:59")
    deadlines = officer.get(f"/api/v1/instances/{instance['id']}/deadlines")
    names = {d["name"] for d in deadlines.get_json()["items"]}
    assert {"reply", "reply.target", "reply.reminder"} <= names
    assert CUSTOMER not in str(entry)


def test_an_opendsr_webhook_request_enters_the_same_intake(
    app,
    dsr,
    officer,
    make_endpoint,
    send,
    frozen_clock,
):
    endpoint = make_endpoint(
        "dsr", "opendsr", request_processes={"erasure": "data_subject_request"}
    )
    body = {
        "request_id": "REQ-7",
        "subject_request_type": "erasure",
        "subject_identities": [
            {
                "identity_type": "email",
                "identity_value": CUSTOMER,
                "identity_format": "raw",
            },
            {
                "identity_type": "email",
                "identity_value": "c0ffee",
                "identity_format": "sha256",
            },
        ],
        "submitted_time": "2026-03-01T09:30:00Z",
        "status_callback_urls": ["https://requests.example/status"],
    }

    reply = send(
        "dsr", body, endpoint["secret"], timestamp=int(frozen_clock().timestamp())
    )

    assert reply.status_code == 202, reply.get_json()
    instance = {"id": reply.get_json()["instance_id"]}
    [entry] = officer.get("/api/v1/requests").get_json()["items"]
    assert (entry["type"], entry["identity_kinds"]) == ("erasure", ["email"])
    assert entry["received_at"].startswith("2026-03-01T09:30")
    assert len(ready(officer, instance, "verify_identity")) == 1


def test_an_authenticated_account_needs_no_further_identity_check(dsr, officer):
    instance = request_of(officer, "access", channel="account")

    assert ready(officer, instance, "verify_identity") == []
    assert len(ready(officer, instance, "assess_request")) == 1
    entry = officer.get("/api/v1/requests").get_json()["items"][0]
    assert entry["identity_method"] == "authenticated_account"


def test_the_clock_may_start_when_identity_is_confirmed(
    app, dsr, officer, frozen_clock, monkeypatch
):
    monkeypatch.setitem(app.config, "REQUEST_CLOCK_START", "identity")
    instance = request_of(officer, "access")
    frozen_clock.advance(days=4)  # confirmed on Friday 6 March

    done(officer, instance, "verify_identity", **CONFIRMED)

    entry = officer.get("/api/v1/requests").get_json()["items"][0]
    assert entry["clock_starts_at"].startswith("2026-03-06T09:00")
    # One month from 6 March ends on 6 April, Easter Monday: rolled to Tuesday.
    assert entry["due_at"].startswith("2026-04-07T21:59:59")
    names = {
        d["name"]: d["due_at"]
        for d in officer.get(
            f"/api/v1/instances/{instance['id']}/deadlines"
        ).get_json()["items"]
    }
    assert names["reply"].startswith("2026-04-07")
    assert "reply.reminder" in names


def test_a_check_by_another_means_must_be_described(dsr, officer):
    instance = request_of(officer, "access")

    reply = complete(
        officer,
        instance,
        "verify_identity",
        identity_method="other",
        identity_outcome="confirmed",
    )

    assert reply.status_code == 422
    assert ready(officer, instance, "verify_identity")


def test_an_unconfirmed_identity_cannot_proceed(dsr, officer):
    instance = request_of(officer, "access")
    done(
        officer,
        instance,
        "verify_identity",
        identity_method="reply_from_address_on_file",
        identity_outcome="not_confirmed",
    )

    reply = complete(officer, instance, "assess_request", decision="proceed")

    assert reply.status_code == 422
    assert reply.get_json()["code"] == "identity-not-confirmed"
    assert "Art 12(6)" in reply.get_json()["detail"]


# --- access -------------------------------------------------------------------------


def test_an_access_request_is_answered_with_the_letter_and_the_export(
    app, dsr, officer
):
    instance = request_of(officer, "access")
    verified_and_assessed(officer, instance)

    [letter] = letters_of(officer, instance)
    html = letter_html(officer, letter)
    assert letter["template"] == "dsr_access_reply"
    for expected in ("Telephone number", "Postal address", "Invoice amount"):
        assert expected in html
    assert "Postbird transactional e-mail" in html  # a named recipient, Art 15(1)(c)
    assert "Tax law keeps the books for seven years." in html  # retention, (d)
    assert "lodge a complaint" in html and "judicial remedy" in html

    [mail] = sent_reply(officer, instance)
    assert mail["to"] == CUSTOMER
    detail = officer.get(f"/api/v1/mail/{mail['id']}").get_json()
    names = {attachment["filename"] for attachment in detail["attachments"]}
    assert {"subject-data.zip", "subject-data.json"} <= names
    assert any(name.endswith(".pdf") for name in names)
    assert instance_status(officer, instance) == "completed"
    entry = register_entry(app, instance)
    assert (entry.status, entry.outcome, entry.answered_late) == (
        "closed",
        "answered",
        False,
    )


def test_a_portability_request_sends_only_the_art_20_data(dsr, officer):
    instance = request_of(officer, "portability")
    verified_and_assessed(officer, instance)

    [letter] = letters_of(officer, instance)
    html = letter_html(officer, letter)
    assert "Telephone number" in html
    assert "Invoice amount" not in html  # kept on a legal obligation: not portable
    [mail] = sent_reply(officer, instance)
    detail = officer.get(f"/api/v1/mail/{mail['id']}").get_json()
    names = {attachment["filename"] for attachment in detail["attachments"]}
    assert {"portable-data.json", "portable-data.zip"} <= names


def test_a_reply_to_a_request_by_post_is_posted_and_recorded(app, dsr, officer):
    posted = request_of(
        officer, "access", subject={"customer_email": CUSTOMER}, channel="post"
    )
    verified_and_assessed(officer, posted)
    done(officer, posted, "review_reply", reply_checked=True)

    done(officer, posted, "post_reply", posted_on="2026-03-03")

    assert instance_status(officer, posted) == "completed"
    assert (
        officer.get(f"/api/v1/mail?instance_id={posted['id']}").get_json()["items"]
        == []
    )


# --- extension, refusal, Art 12(5) --------------------------------------------------


def test_an_extension_within_the_first_month_moves_the_deadline_and_tells_the_subject(
    app, dsr, officer, frozen_clock
):
    instance = request_of(officer, "access")
    frozen_clock.advance(days=20)
    verified_and_assessed(
        officer, instance, "extend", "Your data sits in four systems, one archived."
    )

    entry = officer.get("/api/v1/requests").get_json()["items"][0]
    # Two further months from 2 April 2026: Tuesday 2 June.
    assert entry["due_at"].startswith("2026-06-02T21:59:59")
    assert entry["extended_at"] is not None
    notice = next(
        letter
        for letter in letters_of(officer, instance)
        if letter["template"] == "dsr_extension"
    )
    html = letter_html(officer, notice)
    assert "Your data sits in four systems, one archived." in html
    assert "2 June 2026" in html
    assert "judicial remedy" in html
    mails = officer.get(f"/api/v1/mail?instance_id={instance['id']}").get_json()
    assert [m["letter_id"] for m in mails["items"]] == [notice["id"]]
    assert len(ready(officer, instance, "review_reply")) == 1


def test_an_extension_after_the_first_month_is_refused_and_changes_nothing(
    dsr, officer, frozen_clock
):
    instance = request_of(officer, "access")
    done(officer, instance, "verify_identity", **CONFIRMED)
    frozen_clock.advance(days=32)

    reply = complete(
        officer, instance, "assess_request", decision="extend", reasons="Complex."
    )

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "extension-too-late"
    assert "Art 12(3)" in problem["detail"]
    entry = officer.get("/api/v1/requests").get_json()["items"][0]
    assert entry["due_at"].startswith("2026-04-02")
    assert entry["extended_at"] is None
    assert letters_of(officer, instance) == []
    assert len(ready(officer, instance, "assess_request")) == 1


def test_extending_or_refusing_needs_reasons(dsr, officer):
    instance = request_of(officer, "access")
    done(officer, instance, "verify_identity", **CONFIRMED)

    reply = complete(officer, instance, "assess_request", decision="refuse")

    assert reply.status_code == 422
    assert {"field": "reasons", "message": "is required"} in reply.get_json()["errors"]


def test_a_refusal_letter_gives_the_reasons_and_both_remedies(app, dsr, officer):
    instance = request_of(officer, "erasure")
    verified_and_assessed(
        officer, instance, "refuse", "We must keep your file while the claim runs."
    )

    [letter] = letters_of(officer, instance)
    html = letter_html(officer, letter)
    assert letter["template"] == "dsr_refusal"
    assert "We must keep your file while the claim runs." in html
    assert "lodge a complaint with a supervisory authority" in html
    assert "judicial remedy" in html
    sent_reply(officer, instance)
    entry = register_entry(app, instance)
    assert (entry.outcome, entry.decision) == ("refused", "refuse")


def test_a_repeated_request_is_shown_and_may_be_declined_as_excessive(
    app, dsr, officer, frozen_clock
):
    first = request_of(officer, "access")
    verified_and_assessed(officer, first)
    sent_reply(officer, first)
    frozen_clock.advance(days=3)
    second = request_of(officer, "access")
    done(officer, second, "verify_identity", **CONFIRMED)

    [task] = ready(officer, second, "assess_request")
    shown = officer.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["request"]
    assert [e["reference"] for e in shown["earlier_requests"]] == ["DSR-2026-0001"]
    done(
        officer,
        second,
        "assess_request",
        decision="unfounded",
        reasons="The same request was answered in full three days ago.",
    )

    [letter] = letters_of(officer, second)
    assert "Article 12(5)" in letter_html(officer, letter)
    sent_reply(officer, second)
    assert register_entry(app, second).outcome == "unfounded"


def test_an_answer_after_the_month_is_recorded_as_late(app, dsr, officer, frozen_clock):
    instance = request_of(officer, "access")
    verified_and_assessed(officer, instance)
    frozen_clock.advance(days=40)

    sent_reply(officer, instance)

    assert register_entry(app, instance).answered_late is True


# --- erasure ------------------------------------------------------------------------


def plan_of(officer, instance) -> list[dict[str, Any]]:
    [task] = ready(officer, instance, "review_erasure_plan")
    return officer.get(f"/api/v1/tasks/{task['id']}").get_json()["data"]["plan"]


def erasure_up_to_review(officer) -> dict[str, Any]:
    instance = request_of(officer, "erasure")
    verified_and_assessed(officer, instance)
    return instance


def test_the_proposed_plan_keeps_what_the_law_requires(dsr, officer):
    instance = erasure_up_to_review(officer)

    plan = {step["field"]: step for step in plan_of(officer, instance)}

    assert plan["billing.invoices.amount"]["outcome"] == "retain"
    assert plan["billing.invoices.amount"]["ground"] == "art_17_3_b"
    assert plan["crm.customers.phone"]["outcome"] == "delete"


def test_an_erasure_with_each_outcome_and_the_recipient_tasks(app, dsr, officer, dpo):
    instance = erasure_up_to_review(officer)
    plan = plan_of(officer, instance)
    for step in plan:
        if step["field"] == "marketing.segments.interest_segment":
            step["outcome"] = "anonymise"
        if step["field"] == "marketing.segments.customer_email":
            step.update(
                outcome="restrict",
                ground="art_17_3_e",
                lift_at="2027-03-02T00:00:00+00:00",
                reason="Needed for a pending claim.",
            )
    done(
        officer, instance, "review_erasure_plan", plan=plan, erasure_ground="art_17_1_a"
    )
    done(dpo, instance, "approve_erasure", erasure_approval=True)

    recipients = ready(officer, instance, "notify_recipient")
    assert len(recipients) == 2  # the mailer (e-mail) and the parcel service (address)
    first, second = recipients
    for task, notice in (
        (
            first,
            {
                "notified": True,
                "sent_at": "2026-03-02",
                "method": "e-mail",
                "proof": "MSG-4411",
            },
        ),
        (second, {"notified": False, "reason": "The service closed in 2025."}),
    ):
        reply = officer.post(
            f"/api/v1/tasks/{task['id']}/complete", json={"data": {"notice": notice}}
        )
        assert reply.status_code == 200, reply.get_json()

    assert query(dsr, "SELECT * FROM crm_customers WHERE email = :e", e=CUSTOMER) == []
    invoices = query(
        dsr, "SELECT * FROM billing_invoices WHERE customer_email = :e", e=CUSTOMER
    )
    assert invoices  # retained under Art 17(3)(b)
    [segment] = query(
        dsr, "SELECT * FROM marketing_segments WHERE customer_email = :e", e=CUSTOMER
    )
    assert segment["interest_segment"].startswith("erased-")
    with app.app_context():
        held = db.session.scalars(select(Restriction)).all()
        assert [(r.field_id, r.ground) for r in held] == [
            ("marketing.segments.customer_email", "art_17_3_e")
        ]
    [letter] = letters_of(officer, instance)
    html = letter_html(officer, letter)
    for expected in (
        "Erased:",
        "Anonymised",
        "Restricted",
        "Kept, because the law",
        "Needed for a pending claim.",
        "The service closed in 2025.",
    ):
        assert expected in html
    sent_reply(officer, instance)
    entry = register_entry(app, instance)
    assert entry.outcome == "erased"
    assert [n["notified"] for n in entry.recipient_notices] == [True, False]
    assert CUSTOMER not in str(entry.recipient_notices)


def test_a_recipient_notice_without_proof_is_refused(dsr, officer, dpo):
    instance = erasure_up_to_review(officer)
    done(
        officer,
        instance,
        "review_erasure_plan",
        plan=plan_of(officer, instance),
        erasure_ground="art_17_1_b",
    )
    done(dpo, instance, "approve_erasure", erasure_approval=True)
    task = ready(officer, instance, "notify_recipient")[0]

    reply = officer.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {"notice": {"notified": True, "method": "e-mail"}}},
    )

    assert reply.status_code == 422
    fields = {error["field"] for error in reply.get_json()["errors"]}
    assert {"notice.sent_at", "notice.proof"} <= fields


def test_deleting_what_the_law_keeps_is_refused_at_approval_and_changes_nothing(
    dsr, officer, dpo
):
    instance = erasure_up_to_review(officer)
    plan = plan_of(officer, instance)
    for step in plan:
        step["outcome"], step["ground"] = "delete", None
    done(
        officer, instance, "review_erasure_plan", plan=plan, erasure_ground="art_17_1_a"
    )

    reply = complete(dpo, instance, "approve_erasure", erasure_approval=True)

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "erasure-refused"
    assert any("legal hold" in e["message"] for e in problem["errors"])
    assert query(dsr, "SELECT * FROM crm_customers WHERE email = :e", e=CUSTOMER)
    assert len(ready(dpo, instance, "approve_erasure")) == 1


def test_a_plan_sent_back_returns_to_the_officer(dsr, officer, dpo):
    instance = erasure_up_to_review(officer)
    done(
        officer,
        instance,
        "review_erasure_plan",
        plan=plan_of(officer, instance),
        erasure_ground="art_17_1_a",
    )

    done(
        dpo,
        instance,
        "approve_erasure",
        erasure_approval=False,
        approval_comment="Keep the invoices' e-mail too.",
    )

    assert len(ready(officer, instance, "review_erasure_plan")) == 1


# --- rectification, restriction, objection -----------------------------------------


def test_a_rectification_writes_the_corrected_value_to_the_system(app, dsr, officer):
    instance = request_of(officer, "rectification", details="My phone number changed.")
    verified_and_assessed(officer, instance)

    done(
        officer,
        instance,
        "decide_rectification",
        corrections=[{"field": "crm.customers.phone", "value": "+31 6 1234 5678"}],
    )

    [row] = query(dsr, "SELECT phone FROM crm_customers WHERE email = :e", e=CUSTOMER)
    assert row["phone"] == "+31 6 1234 5678"
    [letter] = letters_of(officer, instance)
    assert "Telephone number" in letter_html(officer, letter)
    sent_reply(officer, instance)
    assert register_entry(app, instance).outcome == "rectified"


def test_a_restriction_holds_the_fields_until_the_lift_date_and_tells_recipients(
    app, dsr, officer
):
    instance = request_of(officer, "restriction")
    verified_and_assessed(officer, instance)

    done(
        officer,
        instance,
        "decide_restriction",
        restriction_ground="art_18_1_a",
        restriction_fields=["crm.customers.address"],
        restriction_lift_at="2026-06-01T00:00:00+00:00",
    )
    done(
        officer,
        instance,
        "notify_recipient",
        notice={
            "notified": True,
            "sent_at": "2026-03-02",
            "method": "letter",
            "proof": "REG-77",
        },
    )

    with app.app_context():
        [held] = db.session.scalars(select(Restriction)).all()
        assert (held.field_id, held.ground) == ("crm.customers.address", "art_18_1_a")
    [letter] = letters_of(officer, instance)
    html = letter_html(officer, letter)
    assert "1 June 2026" in html and "Article 18(3)" in html
    assert "ParcelNet" in html


def test_an_objection_to_direct_marketing_suppresses_the_subject(
    app, dsr, officer, dpo
):
    instance = request_of(officer, "objection")
    verified_and_assessed(officer, instance)

    done(dpo, instance, "weigh_objection", direct_marketing=True)

    check = officer.post(
        "/api/v1/requests/suppressions/check", json={"identities": SUBJECT}
    ).get_json()
    assert check == {"suppressed": True, "purpose": "direct_marketing"}
    other = officer.post(
        "/api/v1/requests/suppressions/check",
        json={"identities": {"email": "someone.else@example.org"}},
    ).get_json()
    assert other["suppressed"] is False
    with app.app_context():
        held = {r.field_id for r in db.session.scalars(select(Restriction))}
    assert "marketing.segments.interest_segment" in held
    [letter] = letters_of(officer, instance)
    assert "never contact you for marketing" in letter_html(officer, letter)


def test_refusing_an_objection_needs_the_compelling_grounds(dsr, officer, dpo):
    instance = request_of(officer, "objection")
    verified_and_assessed(officer, instance)

    reply = complete(dpo, instance, "weigh_objection", direct_marketing=False)

    assert reply.status_code == 422
    assert "Art 21(1)" in reply.get_json()["detail"]


def test_the_register_is_for_officers_only(dsr, make_user):
    manager = make_user("mona", "manager")

    assert manager.get("/api/v1/requests").status_code == 403
