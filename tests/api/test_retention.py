"""Retention sweeps (Art 5(1)(e)) over the demo database, with time moved.

The frozen clock stands at 2026-03-02. In the sample data, employees 6, 12, 18,
24 and 30 left on 2023-01-31 and employee 5 on 2018-06-29 (past the two years of
most HR fields, and 5 past the seven years of the BSN); employees 1, 7, 13, 19 and
25 left on 2024-06-28, inside the two years. Customers 8, 16, 24, 32 and 40 ended
their contract on 2023-09-29 (past two years); 4, 12, 20, 28 and 36 on 2025-12-31.
HR waits for the DPO's review; the CRM's rows are applied at once.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Field, Restriction, System
from app.services import definitions, forms
from tests.api.test_reports import mailer
from tests.conftest import ROOT, query

API = "/api/v1/retention"
LEFT_LONG_AGO = [5, 6, 12, 18, 24, 30]
LEFT_RECENTLY = [1, 7, 13, 19, 25]
CONTRACT_ENDED = [8, 16, 24, 32, 40]


@pytest.fixture
def sweep_process(app):
    """The bundled retention_sweep process and its review form."""
    with app.app_context():
        path = ROOT / "forms" / "retention_review.json"
        forms.deploy_form(path.stem, json.loads(path.read_text()))
        bpmn = ROOT / "workflows" / "retention_sweep.bpmn"
        definitions.deploy(bpmn.read_bytes(), bpmn.name)
        db.session.commit()


@pytest.fixture
def ready(frozen_clock, sweep_process, systems):
    """The demo database, the process, and the clock at 2026-03-02."""
    return systems


def _start(caller):
    reply = caller.post(f"{API}/sweeps")
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()["instance_id"]


def _review_task(caller, instance_id):
    items = caller.get(f"/api/v1/tasks?instance_id={instance_id}").get_json()["items"]
    return next(task for task in items if task["bpmn_id"] == "review_sweep")


def _decide(caller, instance_id, approved, comment=""):
    task = _review_task(caller, instance_id)
    reply = caller.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"data": {"approved": approved, "comment": comment}},
    )
    assert reply.status_code == 200, reply.get_json()


def _run(caller, instance_id):
    runs = caller.get(f"{API}/runs").get_json()["items"]
    run = next(run for run in runs if run["instance_id"] == instance_id)
    return caller.get(f"{API}/runs/{run['id']}").get_json()


def _employees(path):
    return {row["id"]: row for row in query(path, "SELECT * FROM hr_employees")}


def _customer_ids(path):
    return [row["id"] for row in query(path, "SELECT id FROM crm_customers")]


def _anonymised(row):
    return row["name"].startswith("erased-") and row["email"].startswith("erased-")


def _restricted_rows(app, field_id):
    with app.app_context():
        found = db.session.scalars(
            select(Restriction.row).where(Restriction.field_id == field_id)
        )
        return sorted(json.loads(row)["id"] for row in found)


def test_a_sweep_deletes_expired_customers_at_once_and_waits_for_review_of_hr(
    app, ready, dpo
):
    before = _employees(ready)
    instance_id = _start(dpo)

    assert sorted(set(range(1, 41)) - set(_customer_ids(ready))) == CONTRACT_ENDED
    assert _employees(ready) == before
    shown = dpo.get(f"/api/v1/tasks/{_review_task(dpo, instance_id)['id']}")
    review = shown.get_json()["data"]["sweep"]["review"]
    assert review[0]["system"] == "hr"
    assert review[0]["counts"] == {"anonymise": 6, "restrict": 1}
    assert sorted(row["key"]["id"] for row in review[0]["rows"]) == LEFT_LONG_AGO
    run = _run(dpo, instance_id)
    assert run["status"] == "planned"
    assert run["outcome"]["crm"]["status"] == "applied"
    assert run["outcome"]["crm"]["counts"] == {"customers": {"delete_row": 5}}


def test_an_approved_review_anonymises_and_restricts_exactly_the_expired_rows(
    app, ready, dpo
):
    before = _employees(ready)
    instance_id = _start(dpo)
    _decide(dpo, instance_id, True, "checked against the HR exit list")

    after = _employees(ready)
    assert sorted(i for i, row in after.items() if _anonymised(row)) == LEFT_LONG_AGO
    for number in LEFT_LONG_AGO:
        assert after[number]["leave_balance"] == 0
        assert after[number]["bsn"] == before[number]["bsn"]
    untouched = [i for i in before if i not in LEFT_LONG_AGO]
    assert [after[i] for i in untouched] == [before[i] for i in untouched]
    assert _restricted_rows(app, "hr.employees.bsn") == [5]
    run = _run(dpo, instance_id)
    assert run["status"] == "applied"
    assert run["review_comment"] == "checked against the HR exit list"
    assert run["reviewed_by"] == dpo.user_id
    assert run["outcome"]["hr"] == {
        "status": "applied",
        "counts": {"employees": {"anonymise": 6, "restrict": 1}},
    }


def test_a_rejected_review_changes_nothing_in_the_reviewed_system(app, ready, dpo):
    before = _employees(ready)
    instance_id = _start(dpo)
    _decide(dpo, instance_id, False, "exit list not yet confirmed")

    assert _employees(ready) == before
    assert _restricted_rows(app, "hr.employees.bsn") == []
    run = _run(dpo, instance_id)
    assert run["outcome"]["hr"]["status"] == "rejected"
    assert run["status"] == "applied"  # the CRM's part went ahead without review


def test_rows_come_due_as_time_passes_and_are_not_changed_twice(
    app, ready, dpo, frozen_clock
):
    _decide(dpo, _start(dpo), True)
    first = _employees(ready)

    frozen_clock.advance(days=120)  # 2026-06-30: two years after 2024-06-28
    instance_id = _start(dpo)
    review = _review_task(dpo, instance_id)
    rows = dpo.get(f"/api/v1/tasks/{review['id']}").get_json()["data"]["sweep"]
    assert sorted(r["key"]["id"] for r in rows["review"][0]["rows"]) == LEFT_RECENTLY
    _decide(dpo, instance_id, True)

    after = _employees(ready)
    assert [after[i] for i in LEFT_LONG_AGO] == [first[i] for i in LEFT_LONG_AGO]
    assert all(_anonymised(after[i]) for i in LEFT_RECENTLY)


def test_a_legal_hold_keeps_its_rows_and_the_report_says_why(app, ready, dpo):
    reason = "Litigation hold: claim 2026-014"
    hold = dpo.post(
        f"{API}/holds",
        json={
            "system": "crm",
            "entity": "customers",
            "row_key": {"id": 16},
            "reason": reason,
        },
    )
    assert hold.status_code == 201, hold.get_json()
    instance_id = _start(dpo)

    gone = sorted(set(range(1, 41)) - set(_customer_ids(ready)))
    assert gone == [i for i in CONTRACT_ENDED if i != 16]
    held = _run(dpo, instance_id)["held"]
    assert held == [
        {
            "system": "crm",
            "entity": "customers",
            "key": {"id": 16},
            "fields": [
                "crm.customers.address",
                "crm.customers.email",
                "crm.customers.phone",
            ],
            "reason": "legal_hold",
            "hold_id": hold.get_json()["id"],
            "detail": reason,
        }
    ]
    assert [h["id"] for h in dpo.get(f"{API}/holds").get_json()["items"]] == [
        hold.get_json()["id"]
    ]


def test_a_released_hold_no_longer_keeps_its_rows(app, ready, dpo):
    hold = dpo.post(
        f"{API}/holds",
        json={"system": "crm", "entity": "customers", "reason": "Audit"},
    ).get_json()
    _decide(dpo, _start(dpo), False)
    assert len(_customer_ids(ready)) == 40

    assert dpo.delete(f"{API}/holds/{hold['id']}").status_code == 204
    _start(dpo)
    assert len(_customer_ids(ready)) == 35
    assert dpo.get(f"{API}/holds").get_json()["items"] == []


def test_a_hold_on_an_unknown_entity_is_refused(ready, dpo):
    reply = dpo.post(
        f"{API}/holds", json={"system": "crm", "entity": "leads", "reason": "x"}
    )

    assert reply.status_code == 422
    assert reply.get_json()["errors"][0]["field"] == "entity"
    assert dpo.get(f"{API}/holds").get_json()["items"] == []


def _set_rule(app, field_id, **changes):
    system_key, entity_key, key = field_id.split(".")
    with app.app_context():
        for row in db.session.scalars(select(Field).where(Field.key == key)):
            if row.field_id == field_id:
                row.retention = {**row.retention, **changes}
        db.session.commit()


def test_rules_that_cannot_be_computed_are_findings_and_change_nothing_there(
    app, ready, dpo
):
    _set_rule(app, "hr.employees.leave_balance", anchor_column="left_on")
    _set_rule(app, "hr.employees.bsn", period="seven years")
    before = _employees(ready)
    instance_id = _start(dpo)
    _decide(dpo, instance_id, True)

    findings = _run(dpo, instance_id)["findings"]
    assert findings == [
        {
            "field": "hr.employees.bsn",
            "message": "The period does not parse; write one unit, such as P7Y or "
            "P30D.",
        },
        {
            "field": "hr.employees.leave_balance",
            "message": "The anchor column 'left_on' is not in the table "
            "'hr_employees'.",
        },
    ]
    after = _employees(ready)
    assert [after[i]["leave_balance"] for i in before] == [
        before[i]["leave_balance"] for i in before
    ]
    assert _restricted_rows(app, "hr.employees.bsn") == []
    assert all(_anonymised(after[i]) for i in LEFT_LONG_AGO)


def test_the_catalogue_refuses_an_enforced_rule_without_its_anchor(dpo, ready):
    body = dpo.get("/api/v1/registry/fields/crm.customers.phone").get_json()
    retention = {"period": "P2Y", "anchor": "end_of_contract", "on_expiry": "delete"}
    body = {k: v for k, v in body.items() if k in ("name", "data_category")}
    reply = dpo.put(
        "/api/v1/registry/fields/crm.customers.phone",
        json={
            **body,
            "purposes": ["customer_service"],
            "legal_basis": "contract",
            "origin": "provided",
            "retention": retention,
        },
    )

    assert reply.status_code == 422
    fields = [error["field"] for error in reply.get_json()["errors"]]
    assert any(field.endswith("retention.on_expiry") for field in fields), fields
    shown = dpo.get("/api/v1/registry/fields/crm.customers.phone").get_json()
    assert shown["retention"]["period"] == "P2Y"


def test_an_unreachable_system_fails_alone_and_nothing_changes_there(
    app, ready, dpo, tmp_path
):
    with app.app_context():
        crm = db.session.scalars(select(System).where(System.key == "crm")).one()
        crm.connection = f"sqlite:///{tmp_path}/missing/dir/crm.sqlite3"
        db.session.commit()
    instance_id = _start(dpo)
    _decide(dpo, instance_id, True)

    assert len(_customer_ids(ready)) == 40
    run = _run(dpo, instance_id)
    assert run["outcome"]["crm"]["status"] == "failed"
    assert "crm" in run["outcome"]["crm"]["detail"]
    assert run["outcome"]["hr"]["status"] == "applied"
    assert run["counts"]["failed_systems"] == 1


def test_only_one_sweep_runs_at_a_time(ready, dpo):
    _start(dpo)

    reply = dpo.post(f"{API}/sweeps")

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "retention-sweep-running"


@pytest.mark.parametrize(
    ("role", "method", "url", "status"),
    [
        ("privacy_officer", "get", f"{API}/runs", 200),
        ("privacy_officer", "get", f"{API}/holds", 200),
        ("privacy_officer", "post", f"{API}/sweeps", 403),
        ("privacy_officer", "post", f"{API}/holds", 403),
        ("process_designer", "get", f"{API}/runs", 403),
        ("process_designer", "get", f"{API}/holds", 403),
        ("admin", "post", f"{API}/sweeps", 201),
    ],
)
def test_roles(ready, make_user, role, method, url, status):
    caller = make_user("someone", role)
    body = {"system": "crm", "entity": "customers", "reason": "x"}
    kwargs = {"json": body} if url.endswith("/holds") and method == "post" else {}

    assert getattr(caller, method)(url, **kwargs).status_code == status


def test_an_unknown_run_is_a_404(ready, dpo):
    assert dpo.get(f"{API}/runs/999").status_code == 404


def test_the_command_starts_one_sweep_and_refuses_a_second(app, ready, dpo):
    runner = app.test_cli_runner()

    first = runner.invoke(args=["retention", "sweep"])
    second = runner.invoke(args=["retention", "sweep"])

    assert first.exit_code == 0, first.output
    assert "retention sweep started" in first.output
    assert second.exit_code == 1
    assert "already running" in second.output
    assert len(dpo.get(f"{API}/runs").get_json()["items"]) == 1


def test_review_can_be_switched_off_per_system_through_the_registry(ready, dpo):
    body = mailer(retention_review=False)

    changed = dpo.put("/api/v1/registry/systems/mailer", json=body)

    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["retention_review"] is False
    hr = dpo.get("/api/v1/registry/systems/hr").get_json()
    assert hr["retention_review"] is True
