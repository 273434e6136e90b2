"""The DPIA process end to end: screening, assessment, opinion, Art 36, review."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.extensions import db
from app.services import definitions, forms, letters, scheduler
from tests.conftest import ROOT

PROCESS = "dpia"
ZONE = ZoneInfo("Europe/Amsterdam")
START = {
    "purpose": "customer_service",
    "title": "Scoring customers for fraud",
    "description": "A new model scores every order for fraud before delivery.",
}
NECESSITY = {
    "lawful_basis": "Art 6(1)(f): preventing fraud against the company.",
    "purpose_limitation": "Scores are used only to hold an order for review.",
    "data_minimisation": "Order data and payment outcome; no browsing history.",
    "retention": "Scores are deleted 90 days after delivery.",
    "information_to_subjects": "The privacy notice explains the scoring.",
    "rights": "A held order is reviewed by a person on request (Art 22(3)).",
    "processors": "The scoring vendor works under an Art 28 contract.",
    "transfers": "None; the vendor hosts in the EU.",
}
HIGH_RESIDUAL = {
    "source": "The model wrongly flags honest customers.",
    "impact": "Orders withheld; customers treated as suspects.",
    "likelihood": 3,
    "severity": 3,
    "measures": ["Human review of every held order"],
    "residual_likelihood": 3,
    "residual_severity": 3,
}
LOW_RESIDUAL = {
    "source": "Scores leak to staff who need not see them.",
    "impact": "Embarrassment of the customers concerned.",
    "likelihood": 2,
    "severity": 2,
    "measures": ["Role-based access", "Access logging"],
    "residual_likelihood": 1,
    "residual_severity": 2,
}
CONSULTATION = {
    "authority_reference": "AP-2026-123",
    "responsibilities": "We are the sole controller; the vendor is our processor.",
    "purposes_and_means": "Fraud scoring of orders with a vendor's model.",
    "measures_and_safeguards": "Human review, access control, 90-day deletion.",
    "dpo_contact": "dpo@example.org",
}


@pytest.fixture
def dpia_process(app, demo_catalogue):
    """The bundled DPIA process with its forms and letter, over the demo registry."""
    with app.app_context():
        for path in sorted((ROOT / "forms").glob("dpia_*.json")):
            forms.deploy_form(path.stem, json.loads(path.read_text()))
        shown = sorted((ROOT / "letters").glob("dpia_*.html"))
        for path in [ROOT / "letters" / "letterhead.html", *shown]:
            letters.deploy_template(path.stem, path.read_text())
        bpmn = ROOT / "workflows" / f"{PROCESS}.bpmn"
        definitions.deploy(bpmn.read_bytes(), bpmn.name)
        db.session.commit()


@pytest.fixture
def manager(make_user):
    return make_user("mona", "manager")


def _start(officer, **data):
    body = {**START, **data}
    return officer.post("/api/v1/instances", json={"process_id": PROCESS, "data": body})


@pytest.fixture
def opened(frozen_clock, dpia_process, officer):
    """A DPIA just opened: its instance id and register entry id."""
    reply = _start(officer)
    assert reply.status_code == 201, reply.get_json()
    instance_id = reply.get_json()["id"]
    return instance_id, _entry_of(officer, instance_id)["id"]


def _entry_of(caller, instance_id):
    items = caller.get("/api/v1/dpias?page_size=200").get_json()["items"]
    return next(item for item in items if item["instance_id"] == instance_id)


def _entry(caller, dpia_id):
    return caller.get(f"/api/v1/dpias/{dpia_id}").get_json()


def _ready(caller, instance_id):
    items = caller.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"]
    return [task["bpmn_id"] for task in items if task["status"] == "ready"]


def _complete(caller, instance_id, bpmn_id, data):
    items = caller.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"]
    task = next(t for t in items if t["bpmn_id"] == bpmn_id and t["status"] == "ready")
    return caller.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data})


def _done(caller, instance_id, bpmn_id, data):
    reply = _complete(caller, instance_id, bpmn_id, data)
    assert reply.status_code == 200, reply.get_json()


def _screened(officer, instance_id, criteria, art35_3=()):
    reasons = "Weighed against the registry's description of the processing."
    data = {"criteria": list(criteria), "art35_3": list(art35_3), "reasons": reasons}
    _done(officer, instance_id, "screen", data)


def _assessed(officer, instance_id, *risks):
    _done(officer, instance_id, "assess", {"necessity": NECESSITY, "risks": risks})


def _decided(dpo, instance_id, decision="proceed"):
    opinion = {"opinion": "The human review is essential.", "recommendation": decision}
    _done(dpo, instance_id, "give_opinion", opinion)
    reasons = "Fraud losses outweigh the residual risk with human review."
    _done(dpo, instance_id, "decide", {"decision": decision, "reasons": reasons})


def _to_decision(officer, dpo, instance_id, *risks, decision="proceed"):
    _screened(officer, instance_id, ["evaluation_or_scoring", "large_scale"])
    _assessed(officer, instance_id, *risks)
    _decided(dpo, instance_id, decision)


def _message(caller, name, reference, **payload):
    return caller.post(
        "/api/v1/messages",
        json={
            "name": name,
            "correlation": {"reference": reference},
            "payload": payload,
        },
    )


def _deadlines(caller, instance_id):
    reply = caller.get(f"/api/v1/instances/{instance_id}/deadlines").get_json()
    return {item["name"]: item for item in reply["items"]}


def _local_date(text):
    return datetime.fromisoformat(text).astimezone(ZONE).date().isoformat()


def _filed(frozen_clock, officer, dpo, instance_id):
    """Proceed at a high residual risk and file the consultation the next day."""
    _to_decision(officer, dpo, instance_id, HIGH_RESIDUAL)
    frozen_clock.advance(days=1)
    _done(dpo, instance_id, "consult", {**CONSULTATION, "filed_on": "2026-03-03"})


def test_an_unknown_purpose_is_refused_at_start_and_nothing_is_opened(
    frozen_clock, dpia_process, officer
):
    reply = _start(officer, purpose="astrology")

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "dpia-start-invalid"
    assert [e["field"] for e in problem["errors"]] == ["purpose"]
    assert officer.get("/api/v1/dpias").get_json()["items"] == []


def test_the_processing_is_described_from_the_registry_for_the_screening(
    opened, officer
):
    instance_id, dpia_id = opened

    shown = _entry(officer, dpia_id)

    assert shown["reference"] == "DPIA-2026-0001"
    assert shown["status"] == "screening"
    processing = shown["processing"]
    assert processing["name"] == "Customer service"
    assert {"data_categories", "subject_categories", "recipients", "transfers"} <= set(
        processing
    )
    assert processing["data_categories"] and processing["systems"]
    assert processing["retention"]
    assert _ready(officer, instance_id) == ["screen"]


def test_the_screening_task_shows_the_assessor_the_processing(opened, officer):
    instance_id, _ = opened
    items = officer.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"]

    shown = officer.get(f"/api/v1/tasks/{items[0]['id']}").get_json()

    assert shown["data"]["reference"] == "DPIA-2026-0001"
    assert shown["data"]["processing"]["name"] == "Customer service"
    assert shown["data"]["processing"]["data_categories"]


def test_one_criterion_records_that_no_dpia_is_required_with_its_reason(
    opened, officer
):
    instance_id, dpia_id = opened

    _screened(officer, instance_id, ["large_scale"])

    shown = _entry(officer, dpia_id)
    assert shown["status"] == "not_required"
    assert shown["screening"]["required"] is False
    assert shown["screening"]["criteria"] == ["large_scale"]
    assert shown["screening"]["reasons"].startswith("Weighed against")
    assert _local_date(shown["review_due_at"]) == "2027-03-02"
    assert _ready(officer, instance_id) == []
    review = _deadlines(officer, instance_id)["review"]
    assert (review["kind"], review["rule"]["article"]) == (
        "internal_target",
        "Art 35(11)",
    )
    assert review["due_at"] == shown["review_due_at"]


def test_two_criteria_lead_to_the_assessment(opened, officer):
    instance_id, dpia_id = opened

    _screened(officer, instance_id, ["evaluation_or_scoring", "large_scale"])

    assert _entry(officer, dpia_id)["status"] == "assessment"
    assert _ready(officer, instance_id) == ["assess"]


def test_an_art_35_3_case_alone_requires_the_assessment(opened, officer):
    instance_id, dpia_id = opened

    _screened(officer, instance_id, [], art35_3=["b"])

    assert _entry(officer, dpia_id)["screening"]["required"] is True
    assert _ready(officer, instance_id) == ["assess"]


@pytest.mark.parametrize(
    ("risks", "field"),
    [
        ([], "risks"),
        ([{**LOW_RESIDUAL, "measures": []}], "risks.0.measures"),
        (
            [{k: v for k, v in LOW_RESIDUAL.items() if k != "measures"}],
            "risks.0.measures",
        ),
        (
            [LOW_RESIDUAL, {**HIGH_RESIDUAL, "residual_severity": None}],
            "risks.1.residual_severity",
        ),
    ],
    ids=["no risks", "empty measures", "no measures", "no residual score"],
)
def test_an_incomplete_assessment_is_refused_naming_the_part(
    opened, officer, risks, field
):
    instance_id, dpia_id = opened
    _screened(officer, instance_id, ["evaluation_or_scoring", "large_scale"])

    reply = _complete(
        officer, instance_id, "assess", {"necessity": NECESSITY, "risks": risks}
    )

    assert reply.status_code == 422
    assert field in [error["field"] for error in reply.get_json()["errors"]]
    assert _entry(officer, dpia_id)["assessment"] is None
    assert _ready(officer, instance_id) == ["assess"]


def test_a_missing_necessity_part_is_refused_by_name(opened, officer):
    instance_id, dpia_id = opened
    _screened(officer, instance_id, ["evaluation_or_scoring", "large_scale"])
    necessity = {k: v for k, v in NECESSITY.items() if k != "transfers"}

    reply = _complete(
        officer,
        instance_id,
        "assess",
        {"necessity": necessity, "risks": [LOW_RESIDUAL]},
    )

    assert reply.status_code == 422
    assert [e["field"] for e in reply.get_json()["errors"]] == ["necessity.transfers"]
    assert _entry(officer, dpia_id)["status"] == "assessment"


def test_the_assessment_scores_each_risk_before_and_after_its_measures(
    opened, officer, dpo
):
    instance_id, dpia_id = opened
    _screened(officer, instance_id, ["evaluation_or_scoring", "large_scale"])

    _assessed(officer, instance_id, HIGH_RESIDUAL, LOW_RESIDUAL)

    assessment = _entry(officer, dpia_id)["assessment"]
    levels = [(r["level"], r["residual_level"]) for r in assessment["risks"]]
    assert levels == [("high", "high"), ("medium", "low")]
    assert assessment["high_residual_risk"] is True
    assert _ready(dpo, instance_id) == ["give_opinion"]


def test_the_privacy_officer_cannot_give_the_dpo_opinion(opened, officer):
    instance_id, _ = opened
    _screened(officer, instance_id, ["evaluation_or_scoring", "large_scale"])
    _assessed(officer, instance_id, LOW_RESIDUAL)

    assert _ready(officer, instance_id) == []


def test_proceeding_at_a_high_residual_risk_requires_prior_consultation(
    opened, officer, dpo
):
    instance_id, dpia_id = opened

    _to_decision(officer, dpo, instance_id, HIGH_RESIDUAL)

    shown = _entry(dpo, dpia_id)
    assert shown["opinion"]["recommendation"] == "proceed"
    assert shown["decision"]["consultation_required"] is True
    assert shown["decision"]["follows_dpo"] is True
    assert shown["status"] == "consultation"
    assert _ready(dpo, instance_id) == ["consult"]


def test_without_a_high_residual_risk_the_dpia_concludes_without_consultation(
    opened, officer, dpo
):
    instance_id, dpia_id = opened

    _to_decision(officer, dpo, instance_id, LOW_RESIDUAL)

    shown = _entry(dpo, dpia_id)
    assert shown["status"] == "concluded"
    assert shown["consultation"] is None
    assert shown["review_due_at"] is not None


def test_not_proceeding_needs_no_consultation(opened, officer, dpo):
    instance_id, dpia_id = opened

    _to_decision(officer, dpo, instance_id, HIGH_RESIDUAL, decision="do_not_proceed")

    shown = _entry(dpo, dpia_id)
    assert shown["decision"]["consultation_required"] is False
    assert shown["status"] == "concluded"


def test_the_authority_has_eight_weeks_from_filing(frozen_clock, opened, officer, dpo):
    instance_id, dpia_id = opened

    _filed(frozen_clock, officer, dpo, instance_id)

    shown = _entry(dpo, dpia_id)
    assert shown["consultation"]["filed_on"] == "2026-03-03"
    assert shown["consultation"]["authority_reference"] == "AP-2026-123"
    assert _local_date(shown["authority_deadline"]["due_at"]) == "2026-04-28"
    assert shown["authority_deadline"]["state"] == "pending"
    assert [letter["kind"] for letter in shown["letters"]] == ["prior_consultation"]


def test_a_consultation_without_the_art_36_3_information_is_refused(
    frozen_clock, opened, officer, dpo
):
    instance_id, dpia_id = opened
    _to_decision(officer, dpo, instance_id, HIGH_RESIDUAL)
    incomplete = {k: v for k, v in CONSULTATION.items() if k != "dpo_contact"}

    reply = _complete(
        dpo, instance_id, "consult", {**incomplete, "filed_on": "2026-03-02"}
    )

    assert reply.status_code == 422
    assert [e["field"] for e in reply.get_json()["errors"]] == ["dpo_contact"]
    assert _entry(dpo, dpia_id)["consultation"] is None


def test_a_filing_date_in_the_future_is_refused(frozen_clock, opened, officer, dpo):
    instance_id, dpia_id = opened
    _to_decision(officer, dpo, instance_id, HIGH_RESIDUAL)

    reply = _complete(
        dpo, instance_id, "consult", {**CONSULTATION, "filed_on": "2026-03-09"}
    )

    assert reply.status_code == 422
    problem = reply.get_json()
    assert "Art 36(1)" in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["filed_on"]
    assert _entry(dpo, dpia_id)["consultation"] is None


def test_the_authority_extends_by_six_weeks_once(frozen_clock, opened, officer, dpo):
    instance_id, dpia_id = opened
    _filed(frozen_clock, officer, dpo, instance_id)
    reference = _entry(dpo, dpia_id)["reference"]
    frozen_clock.advance(weeks=3)
    notice = {"notified_on": "2026-03-24", "reasons": "Complex processing."}

    reply = _message(dpo, "dpia_consultation_extended", reference, **notice)

    assert reply.status_code == 200, reply.get_json()
    shown = _entry(dpo, dpia_id)
    assert shown["consultation"]["extension"] == notice
    assert _local_date(shown["authority_deadline"]["due_at"]) == "2026-06-09"
    again = _message(dpo, "dpia_consultation_extended", reference, **notice)
    assert again.status_code == 422
    assert again.get_json()["code"] == "dpia-extension-repeated"
    assert _local_date(_entry(dpo, dpia_id)["authority_deadline"]["due_at"]) == (
        "2026-06-09"
    )


def test_an_extension_without_reasons_is_refused(frozen_clock, opened, officer, dpo):
    instance_id, dpia_id = opened
    _filed(frozen_clock, officer, dpo, instance_id)
    reference = _entry(dpo, dpia_id)["reference"]

    reply = _message(
        dpo, "dpia_consultation_extended", reference, notified_on="2026-03-03"
    )

    assert reply.status_code == 422
    assert [e["field"] for e in reply.get_json()["errors"]] == ["reasons"]
    assert _entry(dpo, dpia_id)["consultation"]["extension"] is None


def test_the_written_advice_ends_the_consultation_and_sets_the_review(
    frozen_clock, opened, officer, dpo
):
    instance_id, dpia_id = opened
    _filed(frozen_clock, officer, dpo, instance_id)
    reference = _entry(dpo, dpia_id)["reference"]
    frozen_clock.advance(weeks=5)
    advice = {"received_on": "2026-04-07", "summary": "Proceed; audit the model."}

    reply = _message(dpo, "dpia_advice_received", reference, **advice)

    assert reply.status_code == 200, reply.get_json()
    shown = _entry(dpo, dpia_id)
    assert shown["consultation"]["advice"] == advice
    assert shown["authority_deadline"]["state"] == "met"
    assert shown["status"] == "concluded"
    assert _local_date(shown["review_due_at"]) == "2027-04-07"


def test_the_advice_reaches_only_the_dpia_it_names(frozen_clock, opened, officer, dpo):
    instance_id, _ = opened
    _filed(frozen_clock, officer, dpo, instance_id)

    reply = _message(
        dpo, "dpia_advice_received", "DPIA-2026-0999", received_on="2026-03-03"
    )

    assert reply.status_code == 404


def test_at_the_review_date_the_dpia_comes_back_for_screening(
    app, frozen_clock, opened, officer
):
    instance_id, dpia_id = opened
    _screened(officer, instance_id, ["large_scale"])
    due = datetime.fromisoformat(_entry(officer, dpia_id)["review_due_at"])

    # The engine fires a timer once its time has passed, not at the instant.
    frozen_clock.at = due + timedelta(minutes=1)
    with app.app_context():
        scheduler.sweep()

    shown = _entry(officer, dpia_id)
    assert shown["round"] == 2
    assert shown["status"] == "screening"
    assert shown["screening"] is None
    assert [r["screening"]["required"] for r in shown["history"]] == [False]
    assert shown["processing"]["name"] == "Customer service"
    assert _ready(officer, instance_id) == ["screen"]


def test_before_the_review_date_nothing_comes_back(app, frozen_clock, opened, officer):
    instance_id, dpia_id = opened
    _screened(officer, instance_id, ["large_scale"])

    frozen_clock.advance(days=300)
    with app.app_context():
        scheduler.sweep()

    assert _entry(officer, dpia_id)["round"] == 1
    assert _ready(officer, instance_id) == []


@pytest.mark.parametrize("path", ["/api/v1/dpias", "/api/v1/dpias/{id}"])
def test_a_manager_may_not_read_the_register(opened, manager, path):
    _, dpia_id = opened

    reply = manager.get(path.format(id=dpia_id))

    assert reply.status_code == 403


@pytest.mark.parametrize("reader", ["officer", "dpo", "admin"])
def test_the_privacy_roles_read_the_register(opened, request, reader):
    _, dpia_id = opened
    caller = request.getfixturevalue(reader)

    assert caller.get(f"/api/v1/dpias/{dpia_id}").status_code == 200
    assert caller.get("/api/v1/dpias?purpose=customer_service").get_json()["total"] == 1


def test_an_unknown_dpia_is_not_found(opened, officer):
    assert officer.get("/api/v1/dpias/999").status_code == 404
