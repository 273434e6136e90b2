"""Restriction, erasure, the erasure ledger and portability, on a copy of the demo."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from io import BytesIO

import pytest
import yaml
from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import AuditEvent, ErasureEntry, Field, Instance, Restriction
from app.registry import sample_data
from app.services import (
    catalogue,
    connectors,
    instances,
    registry_changes,
    restrictions,
)
from tests.bpmn import chain, document, service_task, user_task
from tests.conftest import query
from tests.system.service import needs_postgresql

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


def test_a_restriction_past_its_lift_date_no_longer_holds(
    officer, systems, frozen_clock
):
    body = {**IDENTITIES, "fields": ["hr.employees.bsn"], "ground": "art_18_1_a"}
    body["lift_at"] = "2026-03-03T09:00:00+00:00"
    assert officer.post(f"{API}/restrict", json=body).status_code == 200
    held = officer.post(f"{API}/export", json=IDENTITIES).get_json()["data"]["hr"]

    frozen_clock.advance(days=2)

    row = officer.post(f"{API}/export", json=IDENTITIES).get_json()["data"]["hr"]
    assert "hr.employees.bsn" not in held["employees"][0]
    assert row["employees"][0]["hr.employees.bsn"] == SHARED["bsn"]


@pytest.mark.parametrize(
    "lift_at", ["2026-03-01T09:00:00+00:00", "2026-03-02T09:00:00+00:00"]
)
def test_a_restriction_whose_lift_date_is_not_in_the_future_is_refused(
    app, officer, systems, frozen_clock, lift_at
):
    body = {**IDENTITIES, "fields": ["hr.employees.bsn"], "ground": "art_18_1_a"}

    reply = officer.post(f"{API}/restrict", json={**body, "lift_at": lift_at})

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == "restriction-lift-at"
    assert [e["field"] for e in problem["errors"]] == ["lift_at"]
    with app.app_context():
        assert db.session.scalars(select(Restriction)).all() == []


def test_an_erasure_plan_restricting_until_a_past_date_is_refused(
    app, dpo, systems, frozen_clock
):
    before = employee(systems)
    step = {"outcome": "restrict", "ground": "art_17_3_b"}
    step["lift_at"] = "2026-02-01T00:00:00+00:00"

    reply = erase(
        dpo,
        {
            "hr.employees.name": {"outcome": "anonymise"},
            "hr.employees.medical_note": step,
        },
    )

    assert reply.status_code == 422
    assert [e["field"] for e in reply.get_json()["errors"]] == [
        "plan.hr.employees.medical_note.lift_at"
    ]
    assert employee(systems) == before
    with app.app_context():
        assert db.session.scalars(select(Restriction)).all() == []
        assert db.session.scalars(select(ErasureEntry)).all() == []


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
    assert "hr: 1 ledger entries replayed" in first.output
    assert "hr: 0 ledger entries replayed, 1 already erased" in again.output
    assert employee(systems)["name"] != SHARED["name"]
    assert employee(systems)["bsn"] == SHARED["bsn"]
    assert customers(systems) == []


CRM_ROW = {
    "crm.customers.email": {"outcome": "delete"},
    "crm.customers.phone": {"outcome": "delete"},
    "crm.customers.address": {"outcome": "delete"},
}


def backup_of(systems):
    backup = systems.with_name("backup.sqlite3")
    shutil.copy(systems, backup)
    return backup


def restore(backup, systems) -> None:
    connectors.dispose_engines()
    shutil.copy(backup, systems)


def replay(app) -> str:
    result = app.test_cli_runner().invoke(args=["registry", "replay-erasures"])
    assert result.exit_code == 0, result.output
    return result.output


def execute(path, sql: str, **params) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text(sql), params)
    engine.dispose()


def test_replay_leaves_a_new_row_that_reuses_an_erased_id_alone(app, dpo, systems):
    backup = backup_of(systems)
    [customer] = customers(systems)
    assert erase(dpo, CRM_ROW).status_code == 200
    execute(
        systems,
        "INSERT INTO crm_customers (id, email, phone, address) "
        "VALUES (:id, 'newcomer@example.org', '0200000000', 'Elsewhere 1')",
        id=customer["id"],
    )

    kept = replay(app)

    sql = "SELECT email FROM crm_customers WHERE id = :id"
    assert query(systems, sql, id=customer["id"]) == [{"email": "newcomer@example.org"}]
    assert "crm: 0 ledger entries replayed, 0 already erased or gone, 1 left" in kept

    restore(backup, systems)
    first, again = replay(app), replay(app)

    assert customers(systems) == []
    assert "crm: 1 ledger entries replayed" in first
    assert "crm: 0 ledger entries replayed, 1 already erased or gone" in again


def test_a_field_entity_or_system_the_ledger_names_is_not_deleted(app, dpo, systems):
    erase(dpo, {"hr.employees.leave_balance": {"outcome": "anonymise"}})
    registry = "/api/v1/registry"

    document = yaml.safe_load(catalogue.DEMO.read_text())
    del document["systems"]["hr"]["entities"]["employees"]["fields"]["leave_balance"]

    field = dpo.delete(f"{registry}/fields/hr.employees.leave_balance")
    system = dpo.delete(f"{registry}/systems/hr")
    replaced = dpo.post(
        f"{registry}/catalogue?replace=true",
        data=yaml.safe_dump(document),
        headers={"Content-Type": "application/yaml"},
    )

    for reply, named in (
        (field, "hr.employees.leave_balance"),
        (system, "hr"),
        (replaced, "hr.employees.leave_balance"),
    ):
        assert reply.status_code == 409
        assert reply.get_json()["code"] == "in-erasure-ledger"
        assert named in reply.get_json()["detail"]
    assert dpo.get(f"{registry}/fields/hr.employees.leave_balance").status_code == 200
    assert dpo.get(f"{registry}/systems/hr").status_code == 200


def test_replay_acts_on_the_column_the_ledger_names_after_a_catalogue_edit(
    app, dpo, systems
):
    backup = backup_of(systems)
    erase(dpo, {"hr.employees.name": {"outcome": "anonymise"}})
    url = "/api/v1/registry/fields/hr.employees.name"
    mapped = dpo.get(url).get_json()
    body = {
        **{key: mapped[key] for key in registry_changes.FIELD_ATTRIBUTES},
        "column": "full_name",
    }
    assert dpo.put(url, json=body).status_code == 200
    restore(backup, systems)

    output = replay(app)

    assert "hr: 1 ledger entries replayed" in output
    assert employee(systems)["name"] != SHARED["name"]


def test_replay_reports_entries_it_cannot_apply_and_goes_on(app, dpo, systems):
    backup = backup_of(systems)
    erase(dpo, {"hr.employees.name": {"outcome": "anonymise"}, **CRM_ROW})
    restore(backup, systems)
    execute(systems, "ALTER TABLE hr_employees DROP COLUMN name")
    with app.app_context():
        hr_entry = db.session.scalars(
            select(ErasureEntry.id).where(ErasureEntry.system_key == "hr")
        ).one()
        db.session.add(
            ErasureEntry(
                identity_kinds=["email"],
                identity_hmac="0" * 64,
                system_key="billing",
                entity_key="invoices",
                row_key={"id": 1},
                field_ids=["billing.invoices.amount"],
                table_name="billing_invoices",
                column_names=["amount_cents"],
                outcome="nulled",
                status="applied",
            )
        )
        db.session.commit()
    invoice = query(systems, "SELECT amount_cents FROM billing_invoices WHERE id = 1")

    output = replay(app)

    assert f"entry {hr_entry} (hr.employees.name) not applied: The table" in output
    assert "hr: 0 ledger entries replayed, 0 already erased or gone" in output
    assert "billing: 0 ledger entries replayed" in output
    assert "no HMAC of the row's subject key" in output
    assert "crm: 1 ledger entries replayed" in output
    assert customers(systems) == []
    assert query(systems, "SELECT amount_cents FROM billing_invoices WHERE id = 1") == (
        invoice
    )


def test_an_erasure_whose_last_commit_fails_is_still_in_the_ledger(app, dpo, systems):
    backup = backup_of(systems)

    def fail_the_last_commit(session):
        if any(
            getattr(o, "action", "") == "registry.subject_erased" for o in session.new
        ):
            raise RuntimeError("the service database went away")

    event.listen(Session, "before_commit", fail_the_last_commit)
    try:
        reply = erase(dpo, {"hr.employees.name": {"outcome": "anonymise"}})
    finally:
        event.remove(Session, "before_commit", fail_the_last_commit)

    assert reply.status_code == 500
    assert employee(systems)["name"] != SHARED["name"]
    with app.app_context():
        [entry] = db.session.scalars(select(ErasureEntry)).all()
        assert (entry.status, entry.field_ids) == ("pending", ["hr.employees.name"])
    assert events(app, "registry.subject_erased") == []
    restore(backup, systems)
    assert employee(systems)["name"] == SHARED["name"]

    output = replay(app)

    assert "hr: 1 ledger entries replayed" in output
    assert employee(systems)["name"] != SHARED["name"]


ERASING_STEP = document(
    chain(
        "erasing_step",
        service_task(
            "erase", "registry.erase", identities="subject", plan="erasure_plan"
        ),
        user_task("after"),
    )
)


@needs_postgresql
def test_a_workflow_step_that_fails_after_erasing_leaves_its_ledger_entry(
    app, deploy, officer, systems, monkeypatch
):
    assert deploy(ERASING_STEP, "erasing_step.bpmn").status_code == 201
    body = {
        "process_id": "erasing_step",
        "data": {
            "subject": IDENTITIES["identities"],
            "erasure_plan": {"hr.employees.name": {"outcome": "anonymise"}},
        },
    }
    save = instances.save

    def save_then_fail(*args, **kwargs):
        save(*args, **kwargs)
        raise RuntimeError("the service database went away")

    monkeypatch.setattr(instances, "save", save_then_fail)
    reply = officer.post("/api/v1/instances", json=body)
    monkeypatch.undo()

    assert reply.status_code == 500
    assert employee(systems)["name"] != SHARED["name"]
    with app.app_context():
        [entry] = db.session.scalars(select(ErasureEntry)).all()
        assert (entry.status, entry.field_ids) == ("pending", ["hr.employees.name"])
        assert db.session.scalars(select(Instance)).all() == []


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
