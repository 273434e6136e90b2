"""Restriction, erasure, the erasure ledger and portability, on a copy of the demo."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from io import BytesIO

import pytest
from sqlalchemy import create_engine, select, text, update

from app.extensions import db
from app.models import AuditEvent, ErasureEntry, Field
from app.registry import sample_data
from app.services import connectors, restrictions
from tests.conftest import query

API = "/api/v1/registry/subjects"
EMPLOYEES = sample_data.rows()[sample_data.hr_employees]
# Employee 30 is a customer too, with three invoices and a marketing segment.
SHARED = EMPLOYEES[-1]
IDENTITIES = {"identities": {"email": SHARED["email"]}}
KEEP = {"outcome": "retain", "ground": "art_17_3_b"}


def employee(path) -> dict:
    return query(path, "SELECT * FROM hr_employees WHERE id = 30")[0]


def customers(path) -> list[dict]:
    sql = "SELECT * FROM crm_customers WHERE email = :email"
    return query(path, sql, email=SHARED["email"])


def invoices(path) -> list[dict]:
    sql = "SELECT * FROM billing_invoices WHERE customer_email = :e ORDER BY id"
    return query(path, sql, e=SHARED["email"])


def erase(caller, plan: dict, identities=None):
    return caller.post(
        f"{API}/erase", json={**(identities or IDENTITIES), "plan": plan}
    )


def events(app, prefix: str) -> list[AuditEvent]:
    with app.app_context():
        found = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [event for event in found if event.action.startswith(prefix)]


# --- restriction (Art 18) -------------------------------------------------------


def test_a_restricted_field_is_left_out_of_export_and_report_but_located(
    officer, systems
):
    restrict = {**IDENTITIES, "fields": ["hr.employees.bsn"], "ground": "art_18_1_a"}
    restrict["lift_at"] = "2030-01-01T00:00:00+00:00"

    made = officer.post(f"{API}/restrict", json=restrict)

    assert made.status_code == 200
    assert officer.post(f"{API}/locate", json=IDENTITIES).status_code == 200
    exported = officer.post(f"{API}/export", json=IDENTITIES).get_json()
    row = exported["data"]["hr"]["employees"][0]
    assert "hr.employees.bsn" not in row
    assert row["hr.employees.name"] == SHARED["name"]
    report = officer.post(f"{API}/access-report", json=IDENTITIES)
    assert report.get_json()["copy"]["hr"]["employees"][0]["hr.employees.bsn"] == {
        "status": "restricted",
        "ground": "art_18_1_a",
        "article": "Art 18(1)(a)",
        "lift_at": "2030-01-01T00:00:00+00:00",
    }
    zipped = officer.post(f"{API}/export", json={**IDENTITIES, "format": "csv"})
    archive = zipfile.ZipFile(BytesIO(zipped.data))
    for reply in (exported, report.get_json(), archive.read("hr.employees.csv")):
        assert SHARED["bsn"] not in str(reply)


def test_a_restriction_of_every_field_blocks_the_whole_row(app, officer, systems):
    body = {**IDENTITIES, "ground": "art_18_1_d"}

    officer.post(f"{API}/restrict", json=body)

    row = officer.post(f"{API}/export", json=IDENTITIES).get_json()["data"]["hr"]
    assert row["employees"] == [{}]
    with app.app_context():
        held = restrictions.restricted_fields("hr", "employees", {"id": 30})
        assert "hr.employees.bsn" in held and "hr.employees.name" in held
        assert restrictions.restricted_fields("hr", "employees", {"id": 29}) == set()


def test_only_the_dpo_lifts_a_restriction(officer, dpo, systems):
    body = {**IDENTITIES, "fields": ["hr.employees.bsn"], "ground": "art_18_1_a"}
    officer.post(f"{API}/restrict", json=body)

    refused = officer.post(f"{API}/lift", json=IDENTITIES)
    lifted = dpo.post(f"{API}/lift", json=IDENTITIES)

    assert refused.status_code == 403
    assert lifted.get_json()["lifted"] == [
        {
            "system": "hr",
            "entity": "employees",
            "row_key": {"id": 30},
            "field": "hr.employees.bsn",
        }
    ]
    row = officer.post(f"{API}/export", json=IDENTITIES).get_json()["data"]["hr"]
    assert row["employees"][0]["hr.employees.bsn"] == SHARED["bsn"]


def test_a_restriction_past_its_lift_date_no_longer_holds(officer, systems):
    body = {**IDENTITIES, "fields": ["hr.employees.bsn"], "ground": "art_18_1_a"}
    body["lift_at"] = "2020-01-01T00:00:00+00:00"

    officer.post(f"{API}/restrict", json=body)

    row = officer.post(f"{API}/export", json=IDENTITIES).get_json()["data"]["hr"]
    assert row["employees"][0]["hr.employees.bsn"] == SHARED["bsn"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"fields": ["hr.employees.bsn"], "ground": "because"}, 422),
        ({"fields": ["hr.employees.shoe_size"], "ground": "art_18_1_a"}, 422),
        ({"fields": ["hr.employees.bsn"]}, 422),
    ],
)
def test_a_restriction_without_a_ground_or_a_held_field_is_refused(
    officer, systems, body, status
):
    reply = officer.post(f"{API}/restrict", json={**IDENTITIES, **body})

    assert reply.status_code == status


# --- erasure (Art 17) -----------------------------------------------------------


def test_erasure_applies_each_outcome_and_replies_per_system_and_field(
    dpo, officer, systems
):
    plan = {
        "crm.customers.email": {"outcome": "delete"},
        "crm.customers.phone": {"outcome": "delete"},
        "crm.customers.address": {"outcome": "delete"},
        "hr.employees.name": {"outcome": "anonymise"},
        "hr.employees.leave_balance": {"outcome": "anonymise"},
        "hr.employees.bsn": KEEP,
        "hr.employees.medical_note": {"outcome": "restrict", "ground": "art_17_3_b"},
    }

    reply = erase(dpo, plan)

    assert reply.status_code == 200, reply.get_json()
    result = reply.get_json()["systems"]
    assert result["crm"]["status"] == "erased"
    assert result["crm"]["fields"]["crm.customers.phone"] == {
        "outcome": "deleted_row",
        "rows": 1,
    }
    assert {k: v["outcome"] for k, v in result["hr"]["fields"].items()} == {
        "hr.employees.name": "anonymised",
        "hr.employees.leave_balance": "anonymised",
        "hr.employees.bsn": "retained",
        "hr.employees.medical_note": "restricted",
    }
    assert customers(systems) == []
    row = employee(systems)
    assert row["name"] != SHARED["name"]
    assert row["leave_balance"] == 0
    assert row["bsn"] == SHARED["bsn"]
    exported = officer.post(f"{API}/export", json=IDENTITIES).get_json()
    assert "hr.employees.medical_note" not in exported["data"]["hr"]["employees"][0]


def test_anonymising_is_irreversible_random_and_not_a_hash(dpo, systems):
    erase(dpo, {"hr.employees.name": {"outcome": "anonymise"}})
    first = employee(systems)["name"]
    erase(dpo, {"hr.employees.name": {"outcome": "anonymise"}})
    second = employee(systems)["name"]

    digest = hashlib.sha256(SHARED["name"].encode()).hexdigest()
    assert SHARED["name"] not in (first, second)
    assert first != second
    assert digest[:8] not in first


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ({"hr.employees.bsn": {"outcome": "delete"}}, "hr.employees.bsn"),
        (
            {"billing.invoices.amount": {"outcome": "anonymise"}},
            "billing.invoices.amount",
        ),
        ({"crm.customers.phone": {"outcome": "delete"}}, "crm.customers.phone"),
        ({"hr.employees.name": {"outcome": "retain"}}, "hr.employees.name"),
        ({"hr.employees.name": {"outcome": "restrict"}}, "hr.employees.name"),
        ({"hr.employees.shoe_size": {"outcome": "delete"}}, "hr.employees.shoe_size"),
    ],
)
def test_a_plan_the_law_or_the_table_forbids_is_422_naming_the_field(
    app, dpo, systems, plan, field
):
    before = employee(systems), customers(systems), invoices(systems)
    # A field that is allowed rides along, and must not change either.
    allowed = {"hr.employees.leave_balance": {"outcome": "anonymise"}}

    reply = erase(dpo, {**allowed, **plan})

    assert reply.status_code == 422
    body = reply.get_json()
    assert [e["field"] for e in body["errors"]] == [f"plan.{field}"]
    assert (employee(systems), customers(systems), invoices(systems)) == before
    with app.app_context():
        assert db.session.scalars(select(ErasureEntry)).all() == []


def test_only_the_dpo_erases(officer, systems):
    reply = erase(officer, {"hr.employees.name": {"outcome": "anonymise"}})

    assert reply.status_code == 403
    assert employee(systems)["name"] == SHARED["name"]


def test_a_system_failing_half_way_is_left_unchanged_and_others_go_ahead(
    app, dpo, systems
):
    with app.app_context():
        # Let the invoices be anonymised, then make the second one refuse.
        db.session.execute(
            update(Field).where(Field.key == "amount").values(legal_basis="contract")
        )
        db.session.commit()
    second = invoices(systems)[1]["id"]
    engine = create_engine(f"sqlite:///{systems}")
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER refuse BEFORE UPDATE ON billing_invoices "
                f"WHEN OLD.id = {second} BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        )
    engine.dispose()
    before, phone = invoices(systems), customers(systems)[0]["phone"]

    reply = erase(
        dpo,
        {
            "billing.invoices.amount": {"outcome": "anonymise"},
            "crm.customers.phone": {"outcome": "anonymise"},
        },
    )

    result = reply.get_json()["systems"]
    assert result["billing"]["status"] == "failed"
    assert result["billing"]["fields"]["billing.invoices.amount"]["outcome"] == (
        "unchanged"
    )
    assert result["crm"]["status"] == "erased"
    assert invoices(systems) == before
    assert customers(systems)[0]["phone"] != phone
    with app.app_context():
        ledger = db.session.scalars(select(ErasureEntry)).all()
        assert {(e.system_key, e.status) for e in ledger} == {
            ("billing", "failed"),
            ("crm", "applied"),
        }


def test_the_erasure_audit_names_fields_and_outcomes_never_values(app, dpo, systems):
    erase(
        dpo, {"hr.employees.name": {"outcome": "anonymise"}, "hr.employees.bsn": KEEP}
    )

    [event] = events(app, "registry.subject_erased")
    assert event.details["systems"]["hr"]["fields"] == {
        "hr.employees.name": "anonymised",
        "hr.employees.bsn": "retained",
    }
    recorded = json.dumps(event.details)
    for value in (SHARED["email"], SHARED["name"], SHARED["bsn"]):
        assert value not in recorded


# --- the ledger and replay ------------------------------------------------------


def test_replay_after_restoring_a_backup_erases_the_values_again(app, dpo, systems):
    backup = systems.with_name("backup.sqlite3")
    shutil.copy(systems, backup)
    plan = {
        "crm.customers.email": {"outcome": "delete"},
        "crm.customers.phone": {"outcome": "delete"},
        "crm.customers.address": {"outcome": "delete"},
        "hr.employees.name": {"outcome": "anonymise"},
        "hr.employees.bsn": KEEP,
    }
    erase(dpo, plan)
    connectors.dispose_engines()
    shutil.copy(backup, systems)
    assert employee(systems)["name"] == SHARED["name"]
    assert customers(systems) != []

    runner = app.test_cli_runner()
    first = runner.invoke(args=["registry", "replay-erasures"])
    again = runner.invoke(args=["registry", "replay-erasures"])

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    assert "crm: 1 ledger entries replayed" in first.output
    assert employee(systems)["name"] != SHARED["name"]
    assert employee(systems)["bsn"] == SHARED["bsn"]
    assert customers(systems) == []


def test_the_ledger_keeps_an_hmac_of_the_identity_not_the_identity(app, dpo, systems):
    erase(dpo, {"hr.employees.name": {"outcome": "anonymise"}})

    with app.app_context():
        [entry] = db.session.scalars(select(ErasureEntry)).all()
        assert entry.identity_kinds == ["email"]
        assert len(entry.identity_hmac) == 64
        assert (entry.system_key, entry.entity_key, entry.row_key) == (
            "hr",
            "employees",
            {"id": 30},
        )
        assert (entry.field_ids, entry.outcome) == (["hr.employees.name"], "anonymised")
        stored = json.dumps([entry.identity_hmac, entry.row_key, entry.field_ids])
        assert SHARED["email"] not in stored
        assert hashlib.sha256(SHARED["email"].encode()).hexdigest() not in stored


# --- portability (Art 20) -------------------------------------------------------


def test_portability_holds_only_provided_or_observed_data_on_consent_or_contract(
    officer, systems
):
    reply = officer.post(f"{API}/portability", json=IDENTITIES)

    data = reply.get_json()["data"]
    assert set(data["hr"]["employees"][0]) == {
        "hr.employees.email",
        "hr.employees.employee_number",
        "hr.employees.name",
    }
    assert "billing" not in data
    assert set(data["marketing"]["segments"][0]) == {
        "marketing.segments.customer_email"
    }
    assert data["crm"]["customers"][0]["crm.customers.email"] == SHARED["email"]
    assert SHARED["bsn"] not in reply.get_data(as_text=True)


def test_portability_as_csv_is_a_zip_limited_the_same_way(officer, systems):
    reply = officer.post(f"{API}/portability", json={**IDENTITIES, "format": "csv"})

    archive = zipfile.ZipFile(BytesIO(reply.data))
    assert "billing.invoices.csv" not in archive.namelist()
    header = archive.read("hr.employees.csv").decode().splitlines()[0]
    assert "hr.employees.bsn" not in header
    assert "hr.employees.name" in header
