"""Purpose-bound task forms on the sample systems: the manager's leave assessment."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import create_engine, select, update

from app.extensions import db
from app.models import AuditEvent, FormVersion, HumanTask, Instance
from app.registry import sample_data
from app.services import forms, instances, registry, restrictions
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
def leave_process(deploy, demo_catalogue, hr_table):
    forms = {"leave_assessment": json.dumps(LEAVE_FORM).encode()}
    deployed = deploy(LEAVE_BPMN, "leave_assessment.bpmn", forms)
    assert deployed.status_code == 201, deployed.get_json()


@pytest.fixture
def open_leave(leave_process, start_instance, manager):
    """Start a leave assessment for the subject given; returns its task's id."""

    def start(subject):
        data = {"days_requested": 3}
        if subject is not None:
            data["subject"] = subject
        started = start_instance("leave_assessment", data=data)
        [task] = manager.get(f"/api/v1/tasks?instance_id={started['id']}").get_json()[
            "items"
        ]
        return task["id"]

    return start


@pytest.fixture
def leave_task(open_leave):
    return open_leave(SUBJECT)


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


# --- opening a task: audited, and open even when its subject cannot be used --------


def test_opening_the_task_through_the_api_audits_the_fields_shown_not_their_values(
    app, manager, leave_task
):
    reply = manager.get(f"/api/v1/tasks/{leave_task}")

    assert reply.status_code == 200
    assert reply.get_json()["notices"] == []
    [event] = audit_events(app, "task.field_read")
    assert event.actor_id == manager.user_id
    assert event.task_guid == leave_task
    assert event.details["fields"] == [
        "hr.employees.leave_balance",
        "hr.employees.name",
    ]
    assert event.details["purpose"] == "leave_management"
    recorded = json.dumps(event.details)
    for value in (EMPLOYEE["name"], str(EMPLOYEE["leave_balance"])):
        assert value not in recorded


@pytest.mark.parametrize(
    ("subject", "notice"),
    [
        ({"nickname": "Bertie"}, "nickname"),
        (None, "names no data subject"),
    ],
    ids=["unknown-identity", "no-subject"],
)
def test_a_task_whose_subject_cannot_be_used_opens_without_registry_values(
    app, manager, open_leave, subject, notice
):
    task_id = open_leave(subject)

    reply = manager.get(f"/api/v1/tasks/{task_id}")

    assert reply.status_code == 200, reply.get_json()
    body = reply.get_json()
    assert body["data"] == {"days_requested": 3}
    [shown] = body["notices"]
    assert notice in shown
    assert "Bertie" not in reply.get_data(as_text=True)
    assert audit_events(app, "task.field_read") == []


def test_reading_a_restricted_bound_field_directly_is_a_409(
    app, dpo, manager, leave_task
):
    restricted = dpo.post(
        "/api/v1/registry/subjects/restrict",
        json={
            "identities": SUBJECT,
            "fields": ["hr.employees.leave_balance"],
            "ground": "art_18_1_a",
        },
    )
    assert restricted.status_code == 200, restricted.get_json()

    reply = manager.get(f"/api/v1/tasks/{leave_task}/fields/hr.employees.leave_balance")

    assert reply.status_code == 409
    assert reply.mimetype == "application/problem+json"
    assert reply.get_json()["code"] == "field-restricted"
    assert str(EMPLOYEE["leave_balance"]) not in reply.get_data(as_text=True)
    assert audit_events(app, "task.field_read") == []


# --- forms whose bindings a task could not honour -----------------------------------

NESTED_FORM = {
    "type": "object",
    "properties": {
        "employee": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "x-registry-field": "hr.employees.name"}
            },
        },
        "decision": {"type": "string"},
    },
}
LISTED_FORM = {
    "type": "object",
    "properties": {
        "staff": {
            "type": "array",
            "items": {"type": "string", "x-registry-field": "hr.employees.name"},
        }
    },
}
PHONE = {"type": "string", "x-registry-field": "crm.customers.phone"}
TWO_SYSTEMS_FORM = {
    "type": "object",
    "properties": {"leave_balance": BALANCE, "phone": PHONE},
}


def forms_and_definitions(caller) -> tuple[list, list]:
    return (
        caller.get("/api/v1/forms").get_json()["items"],
        caller.get("/api/v1/definitions").get_json()["items"],
    )


@pytest.mark.parametrize(
    ("schema", "field", "words"),
    [
        (
            NESTED_FORM,
            "leave_assessment.properties.employee.properties.name.x-registry-field",
            "properties.employee.properties.name",
        ),
        (
            LISTED_FORM,
            "leave_assessment.properties.staff.items.x-registry-field",
            "properties.staff.items",
        ),
        (TWO_SYSTEMS_FORM, "leave_assessment.properties", "(crm, hr)"),
    ],
    ids=["nested-object", "array-items", "two-systems"],
)
def test_a_form_whose_bindings_a_task_cannot_honour_is_not_deployed(
    designer, demo_catalogue, schema, field, words
):
    as_form = designer.post(
        "/api/v1/forms", json={"name": "leave_assessment", "schema": schema}
    )
    with_bpmn = designer.post(
        "/api/v1/definitions",
        data={
            "bpmn": (io.BytesIO(LEAVE_BPMN), "leave_assessment.bpmn"),
            "forms": [
                (io.BytesIO(json.dumps(schema).encode()), "leave_assessment.json")
            ],
        },
        content_type="multipart/form-data",
    )

    for reply in (as_form, with_bpmn):
        assert reply.status_code == 422, reply.get_json()
        assert reply.mimetype == "application/problem+json"
        errors = {e["field"]: e["message"] for e in reply.get_json()["errors"]}
        assert "leave_assessment" in errors[field]
        assert words in errors[field]
    assert forms_and_definitions(designer) == ([], [])


def leave_may_use_the_crm_phone(app) -> None:
    with app.app_context():
        phone = registry.get_field("crm.customers.phone")
        phone.purposes = [*phone.purposes, "leave_management"]
        db.session.commit()


def test_a_form_writing_one_system_and_showing_another_deploys(
    app, deploy, demo_catalogue
):
    leave_may_use_the_crm_phone(app)
    schema = {
        "type": "object",
        "properties": {"leave_balance": BALANCE, "phone": {**PHONE, "readOnly": True}},
    }

    reply = deploy(
        LEAVE_BPMN,
        "leave_assessment.bpmn",
        {"leave_assessment": json.dumps(schema).encode()},
    )

    assert reply.status_code == 201, reply.get_json()


def _store_unchecked_form(app, schema) -> None:
    """A form version as one stored before the binding rules would be."""
    with app.app_context():
        db.session.add(
            FormVersion(
                name="leave_assessment",
                content_sha256=forms.content_digest(schema),
                schema=schema,
            )
        )
        db.session.commit()


def test_a_stored_form_with_a_nested_binding_is_refused_for_a_new_process(
    app, deploy, designer, demo_catalogue
):
    _store_unchecked_form(app, NESTED_FORM)

    reply = deploy(LEAVE_BPMN, "leave_assessment.bpmn")

    assert reply.status_code == 422
    [problem] = reply.get_json()["errors"]
    assert problem["element_id"] == "assess_leave"
    assert "leave_assessment" in problem["message"]
    assert "properties.employee.properties.name" in problem["message"]
    assert designer.get("/api/v1/definitions").get_json()["items"] == []


def test_a_completion_writing_two_systems_is_refused_and_writes_neither(
    app, manager, leave_task, hr_table
):
    leave_may_use_the_crm_phone(app)
    with app.app_context():
        task = db.session.get(HumanTask, leave_task)
        db.session.get(FormVersion, task.form_version_id).schema = TWO_SYSTEMS_FORM
        db.session.commit()
    data = {"leave_balance": 5, "phone": "+31 6 0000 0000"}

    reply = manager.post(f"/api/v1/tasks/{leave_task}/complete", json={"data": data})

    assert reply.status_code == 409
    assert reply.mimetype == "application/problem+json"
    body = reply.get_json()
    assert body["code"] == "form-spans-systems"
    assert "crm, hr" in body["detail"]
    assert balance(hr_table) == EMPLOYEE["leave_balance"]
    assert audit_events(app, "task.fields_written") == []
    assert audit_events(app, "task.completed") == []
    assert manager.get(f"/api/v1/tasks/{leave_task}").get_json()["status"] == "ready"
