"""The record of processing (Art 30(1)) and the Art 28(3) processor checklists."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from app.extensions import db
from app.models.registry import AGREEMENT_TERMS
from app.services import registry
from tests.conftest import DATA

API = "/api/v1/reports"
RECORD = f"{API}/record-of-processing"
AGREEMENTS = f"{API}/processor-agreements"
SYSTEMS = "/api/v1/registry/systems"
LEAVE_BPMN = (DATA / "leave_assessment.bpmn").read_bytes()
LEAVE_FORM = json.dumps(
    {"type": "object", "properties": {"decision": {"type": "string"}}}
).encode()
CONTROLLER = {
    "CONTROLLER_NAME": "Voorbeeld B.V.",
    "CONTROLLER_ADDRESS": "Damrak 1, Amsterdam",
    "CONTROLLER_EMAIL": "privacy@voorbeeld.example",
    "DPO_NAME": "Dana de Vries",
    "DPO_EMAIL": "dpo@voorbeeld.example",
}
DEMO_TERMS = {term: True for term in AGREEMENT_TERMS} | {
    "compliance_assistance": False,
    "audits": False,
}


def mailer(**changes: Any) -> dict[str, Any]:
    """The demo's processor as the registry API takes it, with changes."""
    body = {
        "name": "Postbird transactional e-mail",
        "owner": "Postbird Inc.",
        "location": "Ashburn, Virginia",
        "country": "US",
        "role": "processor",
        "processor_agreement": {
            "status": "signed",
            "signed_on": "2025-03-14",
            "reference": "DPA-2025-007",
            "terms": DEMO_TERMS,
            "sub_processors": [
                {
                    "name": "Cloudhost Inc. (hosting)",
                    "country": "US",
                    "safeguard": "standard_contractual_clauses",
                }
            ],
        },
        "description": "Sends the CRM's service e-mails.",
        "security_measures": "ISO 27001 certified.",
        "transfer_safeguard": "standard_contractual_clauses",
        "transfer_note": "Module 2 clauses.",
    }
    return body | changes


def purpose(record: dict[str, Any], key: str) -> dict[str, Any]:
    [found] = [p for p in record["purposes"] if p["key"] == key]
    return found


@pytest.fixture
def manager(make_user):
    return make_user("mona", "manager")


@pytest.fixture
def controller(app, monkeypatch):
    for name, value in CONTROLLER.items():
        monkeypatch.setitem(app.config, name, value)


def test_the_record_lists_a_purpose_with_categories_recipients_and_retention(
    dpo, demo_catalogue, controller
):
    record = dpo.get(RECORD).get_json()

    assert record["controller"] == {
        "name": "Voorbeeld B.V.",
        "address": "Damrak 1, Amsterdam",
        "email": "privacy@voorbeeld.example",
    }
    assert record["dpo"] == {"name": "Dana de Vries", "email": "dpo@voorbeeld.example"}
    service = purpose(record, "customer_service")
    assert service["name"] == "Customer service"
    assert [b["article"] for b in service["legal_bases"]] == [
        "Art 6(1)(b)",
        "Art 6(1)(f)",
    ]
    assert service["subject_categories"] == [{"key": "customer", "name": "Customer"}]
    assert {
        "key": "user.contact.email",
        "name": "User Contact Email",
        "special_category": False,
    } in service["data_categories"]
    recipients = {r["name"]: r for r in service["recipients"]}
    assert recipients["Postbird transactional e-mail"]["third_country"] is True
    assert recipients["ParcelNet B.V. (delivery)"]["country"] == "NL"
    assert [t["name"] for t in service["transfers"]] == [
        "Postbird transactional e-mail",
        "Cloudhost Inc. (hosting)",
    ]
    assert all(
        t["safeguard"] == "standard_contractual_clauses" for t in service["transfers"]
    )
    email = next(r for r in service["retention"] if r["field"] == "crm.customers.email")
    assert (email["period"], email["anchor"]) == ("P2Y", "end_of_contract")
    assert [s["key"] for s in service["systems"]] == ["crm"]
    assert service["systems"][0]["security_measures"].startswith("Single sign-on")


def test_special_category_data_names_its_art9_condition(dpo, demo_catalogue):
    sick_leave = purpose(dpo.get(RECORD).get_json(), "sick_leave")

    assert sick_leave["art9_conditions"] == [
        {
            "key": "employment_social_security",
            "article": "Art 9(2)(b)",
            "data_categories": ["user.health_and_medical"],
        }
    ]


def test_contacts_not_configured_say_so(app, dpo, demo_catalogue, monkeypatch):
    for name in CONTROLLER:
        monkeypatch.setitem(app.config, name, None)

    record = dpo.get(RECORD).get_json()

    assert record["controller"]["name"] == "not set"
    assert record["dpo"] == {"name": "not set", "email": "not set"}


def test_the_demo_catalogue_leaves_nothing_to_find(dpo, demo_catalogue):
    record = dpo.get(RECORD).get_json()

    assert record["findings"] == []


def test_a_purpose_without_legal_basis_is_a_finding(dpo, demo_catalogue):
    reply = dpo.post(
        "/api/v1/registry/purposes", json={"key": "audits", "name": "Audits"}
    )
    assert reply.status_code == 201

    record = dpo.get(RECORD).get_json()

    assert purpose(record, "audits")["legal_bases"] == []
    assert [(f["code"], f.get("purpose")) for f in record["findings"]] == [
        ("purpose-without-legal-basis", "audits")
    ]


def test_a_field_stored_without_retention_is_a_finding(app, dpo, demo_catalogue):
    # The registry API refuses such a field; rows from before the rule may lack it.
    with app.app_context():
        row = registry.get_field("crm.customers.phone")
        row.retention = {}
        db.session.commit()

    record = dpo.get(RECORD).get_json()

    assert [(f["code"], f.get("field")) for f in record["findings"]] == [
        ("field-without-retention", "crm.customers.phone")
    ]


def test_a_deployed_process_appears_under_the_purpose_its_user_task_declares(
    dpo, deploy, demo_catalogue
):
    reply = deploy(
        LEAVE_BPMN, "leave_assessment.bpmn", {"leave_assessment": LEAVE_FORM}
    )
    assert reply.status_code == 201, reply.get_json()

    record = dpo.get(RECORD).get_json()

    assert purpose(record, "leave_management")["processes"] == [
        {
            "process_id": "leave_assessment",
            "name": "Leave request assessment",
            "version": 1,
            "task_ids": ["assess_leave"],
        }
    ]
    assert purpose(record, "payroll_tax")["processes"] == []


def test_a_processor_outside_the_eea_without_safeguard_is_a_finding(
    dpo, demo_catalogue
):
    changed = dpo.put(
        f"{SYSTEMS}/mailer", json=mailer(transfer_safeguard=None, transfer_note=None)
    )
    assert changed.status_code == 200, changed.get_json()

    record = dpo.get(RECORD).get_json()

    [finding] = record["findings"]
    assert finding["code"] == "transfer-without-safeguard"
    assert finding["system"] == "mailer"
    assert finding["country"] == "US"
    assert finding["purposes"] == [
        "customer_service",
        "essential.service.notifications.email",
    ]
    [transfer] = [
        t for t in purpose(record, "customer_service")["transfers"] if t["system"]
    ]
    assert transfer["safeguard"] is None


def test_a_new_processor_abroad_that_no_field_names_is_a_finding_too(
    dpo, demo_catalogue
):
    body = mailer(
        key="analytics",
        name="Analytics",
        transfer_safeguard=None,
        transfer_note=None,
        processor_agreement={"status": "draft"},
    )
    assert dpo.post(SYSTEMS, json=body).status_code == 201

    codes = {(f["code"], f["system"]) for f in dpo.get(RECORD).get_json()["findings"]}

    assert codes == {
        ("transfer-without-safeguard", "analytics"),
        ("processor-without-signed-agreement", "analytics"),
    }


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {"country": "DE", "transfer_note": None},
            "transfer_safeguard",
        ),
        (
            {"transfer_safeguard": "derogation", "transfer_note": None},
            "transfer_note",
        ),
        ({"transfer_safeguard": "hope"}, "transfer_safeguard"),
        (
            {
                "processor_agreement": {
                    "status": "signed",
                    "signed_on": "2025-03-14",
                    "terms": {"audit_rights": True},
                }
            },
            "processor_agreement.terms.audit_rights",
        ),
        (
            {
                "processor_agreement": {
                    "status": "signed",
                    "signed_on": "2025-03-14",
                    "sub_processors": [{"name": "Cloudhost", "country": "XX"}],
                }
            },
            "processor_agreement.sub_processors.0.country",
        ),
    ],
)
def test_bad_transfer_or_agreement_values_are_refused_per_field(
    dpo, demo_catalogue, changes, field
):
    reply = dpo.put(f"{SYSTEMS}/mailer", json=mailer(**changes))

    assert reply.status_code == 422
    assert field in [error["field"] for error in reply.get_json()["errors"]]
    system = dpo.get(f"{SYSTEMS}/mailer").get_json()
    assert system["transfer_safeguard"] == "standard_contractual_clauses"
    assert system["processor_agreement"]["terms"] == DEMO_TERMS


def test_a_processor_missing_terms_is_incomplete_with_the_missing_letters(
    dpo, demo_catalogue
):
    checklist = dpo.get(f"{AGREEMENTS}/mailer").get_json()

    assert checklist["status"] == "incomplete"
    assert checklist["missing"] == ["f", "h"]
    assert checklist["agreement"] == {
        "status": "signed",
        "signed_on": "2025-03-14",
        "reference": "DPA-2025-007",
    }
    items = {item["letter"]: item for item in checklist["items"] if item["letter"]}
    assert list(items) == ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert items["h"] == {
        "term": "audits",
        "letter": "h",
        "label": "Provides information and allows audits",
        "present": False,
    }
    assert [s["name"] for s in checklist["sub_processors"]] == [
        "Cloudhost Inc. (hosting)"
    ]


def test_recording_every_term_through_the_api_makes_the_agreement_complete(
    dpo, demo_catalogue
):
    agreement = mailer()["processor_agreement"] | {
        "terms": dict.fromkeys(AGREEMENT_TERMS, True)
    }
    reply = dpo.put(f"{SYSTEMS}/mailer", json=mailer(processor_agreement=agreement))
    assert reply.status_code == 200, reply.get_json()

    listed = dpo.get(AGREEMENTS).get_json()["items"]

    assert [(c["system"], c["status"], c["missing"]) for c in listed] == [
        ("mailer", "complete", [])
    ]


@pytest.mark.parametrize(
    ("agreement", "status"),
    [
        ({"status": "none"}, "no_agreement"),
        ({"status": "expired", "signed_on": "2020-01-01"}, "no_agreement"),
        (
            {"status": "draft", "terms": dict.fromkeys(AGREEMENT_TERMS, True)},
            "incomplete",
        ),
    ],
)
def test_a_processor_without_a_signed_agreement_is_flagged(
    dpo, demo_catalogue, agreement, status
):
    reply = dpo.put(f"{SYSTEMS}/mailer", json=mailer(processor_agreement=agreement))
    assert reply.status_code == 200, reply.get_json()

    checklist = dpo.get(f"{AGREEMENTS}/mailer").get_json()
    findings = dpo.get(RECORD).get_json()["findings"]

    assert checklist["status"] == status
    assert [(f["code"], f["system"]) for f in findings] == [
        ("processor-without-signed-agreement", "mailer")
    ]


def test_an_internal_system_has_no_checklist(dpo, demo_catalogue):
    reply = dpo.get(f"{AGREEMENTS}/hr")

    assert reply.status_code == 404
    assert reply.get_json()["code"] == "not-a-processor"
    assert dpo.get(f"{AGREEMENTS}/nowhere").status_code == 404


def crm(caller: Any, **changes: Any) -> dict[str, Any]:
    """The demo CRM system as the registry API takes it back, with changes."""
    system = caller.get(f"{SYSTEMS}/crm").get_json()
    body = {
        name: system[name]
        for name in ("name", "owner", "location", "country", "role", "description")
    }
    body["connection"] = system["connection"]
    body["entities"] = [
        {k: e[k] for k in ("key", "name", "subject_category", "subject_key", "table")}
        for e in system["entities"]
    ]
    return body | changes


def test_the_html_view_escapes_what_the_registry_holds(dpo, demo_catalogue):
    script = "<script>alert('x')</script>"
    reply = dpo.put(f"{SYSTEMS}/crm", json=crm(dpo, description=script))
    assert reply.status_code == 200, reply.get_json()

    page = dpo.get(f"{RECORD}?format=html")

    assert page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    assert "Customer service" in text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_the_csv_is_a_flat_table_whose_cells_never_run_as_formulas(dpo, demo_catalogue):
    formula = '=HYPERLINK("http://evil.example","x")'
    reply = dpo.put(f"{SYSTEMS}/crm", json=crm(dpo, security_measures=formula))
    assert reply.status_code == 200, reply.get_json()

    reply = dpo.get(f"{RECORD}?format=csv")

    assert reply.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(reply.get_data(as_text=True))))
    [row] = [
        r
        for r in rows
        if r["purpose"] == "customer_service" and r["field"] == "crm.customers.email"
    ]
    assert row["security_measures"] == "'" + formula
    assert row["retention_period"] == "P2Y"
    assert row["data_category_name"] == "User Contact Email"
    assert "Postbird transactional e-mail (US)" in row["recipients"]
    assert not any(
        cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values()
    )


def test_an_unknown_format_is_refused(dpo, demo_catalogue):
    reply = dpo.get(f"{RECORD}?format=pdf")

    assert reply.status_code == 422
    assert reply.get_json()["errors"][0]["field"] == "format"


@pytest.mark.parametrize(
    ("caller", "url", "status"),
    [
        ("dpo", RECORD, 200),
        ("admin", RECORD, 200),
        ("officer", RECORD, 200),
        ("manager", RECORD, 403),
        ("designer", RECORD, 403),
        ("dpo", AGREEMENTS, 200),
        ("admin", f"{AGREEMENTS}/mailer", 200),
        ("officer", AGREEMENTS, 403),
        ("manager", AGREEMENTS, 403),
        ("manager", f"{AGREEMENTS}/mailer", 403),
    ],
)
def test_roles(request, demo_catalogue, caller, url, status):
    reply = request.getfixturevalue(caller).get(url)

    assert reply.status_code == status


def test_reports_need_a_token(client, demo_catalogue):
    assert client.get(RECORD).status_code == 401
