"""Purpose-bound task forms on the sample systems: the manager's leave assessment."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select, update

from app.extensions import db
from app.models import AuditEvent, Instance
from app.registry import sample_data
from app.services import instances, registry, restrictions
from tests.bpmn import chain, document, service_task, user_task

EMPLOYEE = sample_data.rows()[sample_data.hr_employees][0]
SUBJECT = {"employee_number": EMPLOYEE["employee_number"]}
NAME = {"type": "string", "readOnly": True, "x-registry-field": "hr.employees.name"}
BALANCE = {"type": "integer", "x-registry-field": "hr.employees.leave_balance"}
LEAVE_FORM = {
    "type": "object",
    "properties": {
        "name": NAME,
        "leave_balance": BALANCE,
        "days_requested": {"type": "integer"},
        "decision": {"type": "string", "enum": ["approve", "refuse"]},
    },
}
LEAVE_TASK = (
    '<bpmn:userTask id="assess_leave" name="Assess the leave request">'
    "<bpmn:extensionElements><spiffworkflow:properties>"
    '<spiffworkflow:property name="form" value="leave_assessment" />'
    '<spiffworkflow:property name="purpose" value="leave_management" />'
    "</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>"
)
MANAGER_LANE = (
    '<bpmn:laneSet id="lanes"><bpmn:lane id="manager" name="Manager">'
    "<bpmn:flowNodeRef>assess_leave</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"
)
LEAVE_BPMN = document(chain("leave_assessment", LEAVE_TASK, lanes=MANAGER_LANE))


@pytest.fixture
def hr_table(demo_systems_url):
    """The sample HR table; the employee's leave balance is put back afterwards."""
    engine = create_engine(demo_systems_url)
    yield engine
    table = sample_data.hr_employees
    number = table.c.employee_number == EMPLOYEE["employee_number"]
    with engine.begin() as connection:
        connection.execute(
            update(table).where(number).values(leave_balance=EMPLOYEE["leave_balance"])
        )
    engine.dispose()


@pytest.fixture
def manager(make_user):
    return make_user("mia", "manager")


@pytest.fixture
def leave_task(deploy, start_instance, manager, demo_catalogue, hr_table):
    forms = {"leave_assessment": json.dumps(LEAVE_FORM).encode()}
    deployed = deploy(LEAVE_BPMN, "leave_assessment.bpmn", forms)
    assert deployed.status_code == 201, deployed.get_json()
    start_instance("leave_assessment", data={"subject": SUBJECT, "days_requested": 3})
    [task] = manager.get("/api/v1/tasks").get_json()["items"]
    return task["id"]


def audit_events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.action == action)
        return db.session.scalars(query.order_by(AuditEvent.id)).all()


def balance(hr_table) -> int:
    table = sample_data.hr_employees
    number = table.c.employee_number == EMPLOYEE["employee_number"]
    with hr_table.connect() as connection:
        return connection.scalar(select(table.c.leave_balance).where(number))


def test_the_manager_sees_name_and_leave_balance_and_never_the_bsn(manager, leave_task):
    reply = manager.get(f"/api/v1/tasks/{leave_task}")

    assert reply.status_code == 200
    assert reply.get_json()["data"] == {
        "name": EMPLOYEE["name"],
        "leave_balance": EMPLOYEE["leave_balance"],
        "days_requested": 3,
    }
    assert EMPLOYEE["bsn"] not in reply.get_data(as_text=True)


def test_a_field_whose_purposes_no_longer_include_the_tasks_is_left_out(
    app, manager, leave_task
):
    with app.app_context():
        row = registry.get_field("hr.employees.leave_balance")
        row.purposes = ["employment"]
        db.session.commit()

    data = manager.get(f"/api/v1/tasks/{leave_task}").get_json()["data"]

    assert "leave_balance" not in data
    assert data["name"] == EMPLOYEE["name"]


def test_a_bound_field_is_read_directly_within_the_tasks_purpose(
    app, manager, leave_task
):
    reply = manager.get(f"/api/v1/tasks/{leave_task}/fields/hr.employees.name")

    assert reply.get_json() == {
        "field_id": "hr.employees.name",
        "value": EMPLOYEE["name"],
    }
    [event] = audit_events(app, "task.field_read")
    assert event.details["fields"] == ["hr.employees.name"]


@pytest.mark.parametrize(
    "field_id", ["hr.employees.bsn", "hr.employees.email", "hr.nothing.here"]
)
def test_a_direct_read_outside_the_form_or_purpose_is_403_and_audited(
    app, manager, leave_task, field_id
):
    reply = manager.get(f"/api/v1/tasks/{leave_task}/fields/{field_id}")

    assert reply.status_code == 403
    assert reply.get_json()["code"] == "purpose-forbidden"
    assert EMPLOYEE["bsn"] not in reply.get_data(as_text=True)
    [event] = audit_events(app, "access.denied")
    assert event.task_guid == leave_task
    assert event.details["fields"] == [field_id]
    assert event.details["purpose"] == "leave_management"


def test_another_lane_cannot_read_a_field_of_the_task(officer, leave_task):
    reply = officer.get(f"/api/v1/tasks/{leave_task}/fields/hr.employees.name")

    assert reply.status_code == 403
    assert reply.get_json()["code"] == "lane-forbidden"


def test_completing_writes_the_leave_balance_to_the_hr_table(
    app, manager, leave_task, hr_table, caplog
):
    data = {"leave_balance": 246813, "decision": "approve", "name": "Someone Else"}

    reply = manager.post(f"/api/v1/tasks/{leave_task}/complete", json={"data": data})

    assert reply.status_code == 200, reply.get_json()
    assert balance(hr_table) == 246813
    [written] = audit_events(app, "task.fields_written")
    assert written.details["fields"] == ["hr.employees.leave_balance"]
    assert written.details["systems"] == ["hr"]
    events = audit_events(app, "task.completed") + [written]
    recorded = json.dumps([e.details for e in events]) + caplog.text
    for value in ("246813", EMPLOYEE["employee_number"], EMPLOYEE["name"]):
        assert value not in recorded


def test_bound_values_stay_out_of_the_instance_state(app, manager, leave_task):
    data = {"leave_balance": 17, "decision": "approve"}

    manager.post(f"/api/v1/tasks/{leave_task}/complete", json={"data": data})

    with app.app_context():
        instance = db.session.scalar(select(Instance))
        running = instances.load(instance)
        stored = running.task_data(leave_task)
    assert "leave_balance" not in stored
    assert stored["decision"] == "approve"


def test_writing_a_field_outside_the_purpose_is_403_and_changes_nothing(
    app, manager, leave_task, hr_table
):
    with app.app_context():
        row = registry.get_field("hr.employees.leave_balance")
        row.purposes = ["employment"]
        db.session.commit()
    data = {"leave_balance": 1, "decision": "approve"}

    reply = manager.post(f"/api/v1/tasks/{leave_task}/complete", json={"data": data})

    assert reply.status_code == 403
    assert reply.get_json()["code"] == "purpose-forbidden"
    assert balance(hr_table) == EMPLOYEE["leave_balance"]
    [event] = audit_events(app, "access.denied")
    assert event.details["fields"] == ["hr.employees.leave_balance"]
    assert manager.get(f"/api/v1/tasks/{leave_task}").get_json()["status"] == "ready"


# --- subject operators in service tasks ---------------------------------------------


def operator_process(operator: str) -> bytes:
    return document(
        chain(
            "subject_operation",
            service_task("run_operator", operator, identities="subject"),
            user_task("after"),
        )
    )


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("registry.locate", {"systems", "matches"}),
        ("registry.export", {"systems", "fields", "rows"}),
        ("registry.access_report", {"processing", "articles", "fields"}),
        ("registry.portability", {"systems", "fields", "rows"}),
    ],
)
def test_subject_operators_return_ids_and_counts_to_the_process(
    app, deploy, start_instance, demo_catalogue, operator, expected
):
    assert deploy(operator_process(operator)).status_code == 201

    started = start_instance("subject_operation", data={"subject": SUBJECT})

    assert started["status"] == "running"
    with app.app_context():
        running = instances.load(db.session.get(Instance, started["id"]))
        result = running.task_data(running.ready_tasks()[0].guid)["result"]
    assert expected <= set(result)
    assert "copy" not in result and "data" not in result
    assert '"hr' in json.dumps(result)
    for value in (EMPLOYEE["bsn"], EMPLOYEE["name"], EMPLOYEE["email"]):
        assert value not in json.dumps(result)


def test_a_subject_operator_that_finds_nobody_is_a_task_error(
    deploy, start_instance, demo_catalogue
):
    deploy(operator_process("registry.locate"))

    started = start_instance(
        "subject_operation", data={"subject": {"employee_number": "E0"}}
    )

    assert started["status"] == "error"
    assert "No connected system" in started["error"]["message"]


def test_a_restricted_field_is_neither_shown_nor_changed_by_a_task(
    dpo, manager, leave_task, hr_table
):
    before = balance(hr_table)
    restricted = dpo.post(
        "/api/v1/registry/subjects/restrict",
        json={
            "identities": SUBJECT,
            "fields": ["hr.employees.leave_balance"],
            "ground": "art_18_1_a",
        },
    )
    assert restricted.status_code == 200, restricted.get_json()

    shown = manager.get(f"/api/v1/tasks/{leave_task}").get_json()["data"]
    data = {"leave_balance": before + 8, "decision": "approve"}
    reply = manager.post(f"/api/v1/tasks/{leave_task}/complete", json={"data": data})

    assert "leave_balance" not in shown and "name" in shown
    assert reply.status_code == 409
    assert reply.get_json()["code"] == "field-restricted"
    assert balance(hr_table) == before


def test_a_process_restricts_and_erases_through_operators(
    app, deploy, start_instance, demo_catalogue, hr_table
):
    plan = '{"hr.employees.leave_balance": {"outcome": "anonymise"}}'
    process = document(
        chain(
            "subject_rights",
            service_task(
                "restrict",
                "registry.restrict",
                identities="subject",
                ground="'art_18_1_a'",
                fields="['hr.employees.name']",
            ),
            service_task("erase", "registry.erase", identities="subject", plan=plan),
            user_task("after"),
        )
    )
    assert deploy(process).status_code == 201
    before = balance(hr_table)

    started = start_instance("subject_rights", data={"subject": SUBJECT})

    assert started["status"] == "running", started["error"]
    assert balance(hr_table) != before
    table = sample_data.hr_employees
    number = table.c.employee_number == EMPLOYEE["employee_number"]
    with hr_table.connect() as connection:
        row_id = connection.scalar(select(table.c.id).where(number))
    with app.app_context():
        restricted = restrictions.restricted_fields("hr", "employees", {"id": row_id})
    assert restricted == {"hr.employees.name"}
