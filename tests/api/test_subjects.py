"""Subject locate, export and access report through the API, on the sample systems."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.models import AuditEvent, System
from app.registry import sample_data
from app.services.breaches import FORMULA_STARTS

API = "/api/v1/registry/subjects"
EMPLOYEES = sample_data.rows()[sample_data.hr_employees]
SHARED = EMPLOYEES[-1]
ART15 = (
    "purposes",
    "data_category",
    "recipients",
    "retention",
    "rights",
    "complaint",
    "source",
    "automated_decision",
)


@pytest.fixture
def shared(demo_catalogue):
    return {"identities": {"email": SHARED["email"]}}


def field_report(report: dict, field_id: str) -> dict:
    return next(item for item in report["fields"] if item["id"] == field_id)


def audit_events(app) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()


@pytest.mark.parametrize(
    ("role", "status"),
    [("dpo", 200), ("privacy_officer", 200), ("admin", 403), ("process_designer", 403)],
)
@pytest.mark.parametrize("path", ["/locate", "/export", "/access-report"])
def test_only_officers_may_reach_a_subject(make_user, shared, role, status, path):
    reply = make_user("someone", role).post(API + path, json=shared)

    assert reply.status_code == status


def test_locate_names_systems_and_row_keys_but_no_values(officer, shared):
    reply = officer.post(f"{API}/locate", json=shared)

    body = reply.get_json()
    assert {"hr", "crm", "billing"} <= set(body["systems"])
    hr = next(m for m in body["matches"] if m["system"] == "hr")
    assert hr == {
        "system": "hr",
        "entity": "employees",
        "matched_on": ["email"],
        "row_keys": [{"id": len(EMPLOYEES)}],
    }
    assert SHARED["email"] not in reply.get_data(as_text=True)


def test_the_json_export_holds_every_mapped_field_and_its_manifest(officer, shared):
    reply = officer.post(f"{API}/export", json=shared)

    body = reply.get_json()
    employee = body["data"]["hr"]["employees"][0]
    assert employee["hr.employees.bsn"] == SHARED["bsn"]
    assert employee["hr.employees.email"] == SHARED["email"]
    assert body["data"]["crm"]["customers"][0]["crm.customers.email"] == SHARED["email"]
    column = body["manifest"]["$defs"]["hr.employees"]["properties"]["hr.employees.bsn"]
    assert column["title"] == "Citizen service number (BSN)"
    assert column["x-data-category"] == (
        "user.government_id.national_identification_number"
    )
    assert column["x-purposes"] == ["payroll_tax"]
    invoices = body["manifest"]["$defs"]["billing.invoices"]["properties"]
    assert invoices["billing.invoices.invoice_date"]["format"] == "date"
    assert invoices["billing.invoices.amount"]["type"] == ["integer", "null"]


def test_the_csv_export_is_a_zip_of_one_file_per_entity_and_a_manifest(officer, shared):
    reply = officer.post(f"{API}/export", json={**shared, "format": "csv"})

    assert reply.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(reply.data))
    assert {"hr.employees.csv", "crm.customers.csv", "manifest.json"} <= set(
        archive.namelist()
    )
    rows = list(csv.DictReader(io.StringIO(archive.read("hr.employees.csv").decode())))
    assert rows[0]["hr.employees.bsn"] == SHARED["bsn"]
    manifest = json.loads(archive.read("manifest.json"))
    assert set(manifest["$defs"]["hr.employees"]["properties"]) == set(rows[0])


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_quoted(
    officer, systems, start
):
    typed = start + 'HYPERLINK("https://attacker.example/","open")'
    engine = create_engine(f"sqlite:///{systems}")
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE crm_customers SET address = :a WHERE email = :e"),
            {"a": typed, "e": SHARED["email"]},
        )
    engine.dispose()
    body = {"identities": {"email": SHARED["email"]}}

    zipped = officer.post(f"{API}/export", json={**body, "format": "csv"})
    exported = officer.post(f"{API}/export", json=body).get_json()

    archive = zipfile.ZipFile(io.BytesIO(zipped.data))
    text_ = archive.read("crm.customers.csv").decode()
    [row] = list(csv.DictReader(io.StringIO(text_)))
    assert row["crm.customers.address"] == "'" + typed
    assert row["crm.customers.email"] == SHARED["email"]
    assert exported["data"]["crm"]["customers"][0]["crm.customers.address"] == typed


def test_the_access_report_carries_art_15_for_the_bsn(officer, shared):
    report = officer.post(f"{API}/access-report", json=shared).get_json()

    bsn = field_report(report, "hr.employees.bsn")
    assert set(ART15) <= set(bsn)
    assert [p["key"] for p in bsn["purposes"]] == ["payroll_tax"]
    assert bsn["legal_basis"]["article"] == "Art 6(1)(c)"
    assert bsn["recipients"] == [
        {
            "name": "Belastingdienst (Dutch tax authority)",
            "country": "NL",
            "third_country": False,
        }
    ]
    assert bsn["retention"]["period"] == "P7Y"
    erasure = next(r for r in bsn["rights"] if r["right"] == "erasure")
    assert "17(3)(b)" in erasure["note"]
    assert bsn["complaint"]["authority"] == "Autoriteit Persoonsgegevens"
    assert bsn["source"] is None
    assert bsn["automated_decision"] is None
    assert report["copy"]["hr"]["employees"][0]["hr.employees.bsn"] == SHARED["bsn"]


def test_the_access_report_names_the_third_country_mailer_for_crm_email(
    officer, shared
):
    report = officer.post(f"{API}/access-report", json=shared).get_json()

    email = field_report(report, "crm.customers.email")
    assert email["recipients"] == [
        {
            "name": "Postbird transactional e-mail",
            "country": "US",
            "third_country": True,
            "role": "processor",
            "processor_agreement": "signed",
        }
    ]
    assert email["data_category"]["key"] == "user.contact.email"
    portability = next(r for r in email["rights"] if r["right"] == "portability")
    assert portability["applies"] is True
    assert email["complaint"]["article"] == "Art 77"


def test_the_access_report_gives_source_and_logic_where_not_provided(officer, shared):
    customers = sample_data.rows()[sample_data.marketing_segments]
    identities = {"email": customers[0]["customer_email"]}

    report = officer.post(f"{API}/access-report", json={"identities": identities})

    segment = field_report(report.get_json(), "marketing.segments.interest_segment")
    assert segment["source"]["origin"] == "inferred"
    assert "interest segment" in segment["automated_decision"]["logic"]
    amount = field_report(report.get_json(), "billing.invoices.amount")
    assert amount["source"]["origin"] == "observed"


@pytest.mark.parametrize("path", ["/locate", "/export", "/access-report"])
def test_a_subject_that_matches_nothing_is_404(officer, demo_catalogue, path):
    identities = {"email": "nobody@example.org"}

    reply = officer.post(API + path, json={"identities": identities})

    assert reply.status_code == 404
    assert reply.get_json()["code"] == "subject-not-found"


def test_sql_in_an_identity_value_is_a_plain_miss(officer, demo_catalogue):
    identities = {"email": "' OR '1'='1", "employee_number": "1; DROP TABLE x"}

    reply = officer.post(f"{API}/export", json={"identities": identities})

    assert reply.status_code == 404
    again = officer.post(
        f"{API}/locate", json={"identities": {"employee_number": "E1001"}}
    )
    assert again.status_code == 200


@pytest.mark.parametrize(
    "body", [{}, {"identities": {}}, {"identities": {"Bad Key": "x"}}]
)
def test_a_request_without_usable_identities_is_422(officer, demo_catalogue, body):
    reply = officer.post(f"{API}/locate", json=body)

    assert reply.status_code == 422


def test_an_unreachable_system_is_a_problem_naming_it_not_its_password(
    app, officer, shared, monkeypatch
):
    monkeypatch.setenv(
        "CRM_DATABASE_URL", "postgresql+psycopg://crm:pa55word@127.0.0.1:1/crm"
    )
    with app.app_context():
        crm = db.session.scalar(select(System).where(System.key == "crm"))
        crm.connection = "env:CRM_DATABASE_URL"
        db.session.commit()

    reply = officer.post(f"{API}/export", json=shared)

    assert reply.status_code == 503
    body = reply.get_json()
    assert body["code"] == "connector-unreachable"
    assert body["system"] == "crm"
    assert "pa55word" not in reply.get_data(as_text=True)


def test_audit_and_logs_name_fields_and_systems_never_values(
    app, officer, shared, caplog
):
    officer.post(f"{API}/export", json=shared)
    officer.post(f"{API}/export", json={**shared, "format": "csv"})
    officer.post(f"{API}/access-report", json=shared)

    events = [e for e in audit_events(app) if e.action.startswith("registry.subject")]
    assert [e.action for e in events] == [
        "registry.subject_exported",
        "registry.subject_exported",
        "registry.subject_access_report",
    ]
    assert "hr.employees.bsn" in events[0].details["fields"]
    assert {"hr", "crm"} <= set(events[0].details["systems"])
    recorded = json.dumps([e.details for e in events]) + caplog.text
    for value in (SHARED["email"], SHARED["bsn"], SHARED["name"]):
        assert value not in recorded
