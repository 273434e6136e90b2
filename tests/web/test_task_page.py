"""The task page: a form rendered from its JSON Schema, and completing it."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from sqlalchemy import create_engine, select, update

from app.extensions import db
from app.models import AuditEvent, HumanTask
from app.models.instances import TASK_COMPLETED, TASK_READY
from app.registry import sample_data
from app.services import instances
from tests.bpmn import chain, document, user_task

SCRIPT = "<script>alert(1)</script>"
EMPLOYEE = sample_data.rows()[sample_data.hr_employees][0]
HOSTILE_FORM = {
    "title": "Check the case",
    "type": "object",
    "properties": {
        "name": {
            "title": "Employee name",
            "type": "string",
            "readOnly": True,
            "x-registry-field": "hr.employees.name",
        },
        "count": {"title": "Count", "type": "integer", "minimum": 0},
        "choice": {"title": f"{SCRIPT} Choice", "type": "string", "enum": ["a", "b"]},
        "note": {"title": "Note", "type": "string", "maxLength": 300},
        "items": {
            "title": "Items",
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "label": {"title": "Label", "type": "string"},
                    "amount": {"title": "Amount", "type": "number"},
                },
                "required": ["label"],
            },
        },
    },
    "required": ["count", "choice"],
}
INSTRUCTIONS = (
    f"Read **carefully**. {SCRIPT} [bad](javascript:alert(2)) "
    "[good](https://example.org/help)"
)
HOSTILE_TASK = (
    '<bpmn:userTask id="check" name="&lt;script&gt;alert(3)&lt;/script&gt; Check">'
    "<bpmn:extensionElements><spiffworkflow:properties>"
    '<spiffworkflow:property name="form" value="hostile_form" />'
    '<spiffworkflow:property name="purpose" value="leave_management" />'
    "</spiffworkflow:properties><spiffworkflow:instructionsForEndUser>"
    + INSTRUCTIONS.replace("<", "&lt;").replace(">", "&gt;")
    + "</spiffworkflow:instructionsForEndUser></bpmn:extensionElements>"
    "</bpmn:userTask>"
)
LANE = (
    '<bpmn:laneSet id="lanes"><bpmn:lane id="officers" name="Privacy officer">'
    "<bpmn:flowNodeRef>check</bpmn:flowNodeRef>"
    "<bpmn:flowNodeRef>after</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"
)
HOSTILE_BPMN = document(
    chain("hostile_case", HOSTILE_TASK, user_task("after", "After"), lanes=LANE)
)


def ready_task(app, instance_id: str) -> HumanTask | None:
    with app.app_context():
        return db.session.scalars(
            select(HumanTask).where(
                HumanTask.instance_id == instance_id, HumanTask.status == TASK_READY
            )
        ).one_or_none()


def status_of(app, task_guid: str) -> str:
    with app.app_context():
        return db.session.get(HumanTask, task_guid).status


def field_block(html: str, name: str) -> str:
    """The HTML of one field's block, from its label to the next field."""
    start = html.index(f'id="f-{name}"')
    start = html.rfind('<div class="field', 0, start)
    return html[start : html.index("</div>", start)]


@pytest.fixture
def web(sign_in_as):
    return sign_in_as("paula", "privacy_officer")


@pytest.fixture
def review_task(app, review_process, start_instance) -> dict[str, Any]:
    """A ready 'Prepare the review' task of a fresh two-step review."""
    instance = start_instance()
    task = ready_task(app, instance["id"])
    return {"instance_id": instance["id"], "guid": task.task_guid}


@pytest.fixture
def hostile_task(app, deploy, start_instance, systems) -> dict[str, Any]:
    """A task whose BPMN, form and subject's registry data all carry a <script>."""
    engine = create_engine(f"sqlite:///{systems}")
    number = sample_data.hr_employees.c.employee_number
    with engine.begin() as connection:
        connection.execute(
            update(sample_data.hr_employees)
            .where(number == EMPLOYEE["employee_number"])
            .values(name=f"{SCRIPT} Eve")
        )
    engine.dispose()
    forms = {"hostile_form": json.dumps(HOSTILE_FORM).encode()}
    deployed = deploy(HOSTILE_BPMN, "hostile_case.bpmn", forms)
    assert deployed.status_code == 201, deployed.get_json()
    subject = {"employee_number": EMPLOYEE["employee_number"]}
    instance = start_instance("hostile_case", data={"subject": subject})
    task = ready_task(app, instance["id"])
    return {"instance_id": instance["id"], "guid": task.task_guid}


# --- showing the task ---------------------------------------------------------------


def test_the_page_shows_title_process_lane_purpose_instructions_and_form(
    web, review_task
):
    html = web.page(f"/tasks/{review_task['guid']}")

    assert "<h1>Prepare the review</h1>" in html
    assert "Two-step review" in html
    assert f'href="/instances/{review_task["instance_id"]}"' in html
    assert "Privacy officer" in html
    assert "compliance_review" in html
    assert "Summarise what is to be reviewed and why." in html
    assert '<textarea id="f-summary" name="summary"' in html
    assert 'type="date" id="f-due_date" name="due_date"' in html
    assert "(required)" in field_block(html, "summary")
    assert "(required)" not in field_block(html, "due_date")


def test_claim_and_release_buttons_post_back_with_the_page_as_next(web, review_task):
    html = web.page(f"/tasks/{review_task['guid']}")

    assert f'action="/tasks/{review_task["guid"]}/claim"' in html
    assert f'name="next" value="/tasks/{review_task["guid"]}"' in html


def test_the_instances_deadlines_are_shown_with_a_countdown(
    app, web, hostile_task, frozen_clock
):
    from datetime import timedelta

    from app import clock
    from app.models import Deadline

    with app.app_context():
        db.session.add(
            Deadline(
                instance_id=hostile_task["instance_id"],
                name="Reply to the subject",
                kind="legal",
                action="escalate",
                due_at=clock.now() + timedelta(days=3),
            )
        )
        db.session.commit()

    html = web.page(f"/tasks/{hostile_task['guid']}")

    assert "Reply to the subject" in html
    assert "due in 3 days" in html


def test_a_lane_the_user_does_not_hold_is_refused_and_audited(
    app, sign_in_as, review_task
):
    dpo = sign_in_as("dirk", "dpo")

    reply = dpo.get(f"/tasks/{review_task['guid']}")

    assert reply.status_code == 403
    assert "lane" in reply.get_data(as_text=True)
    assert (
        dpo.post(f"/tasks/{review_task['guid']}", {"summary": "x"}).status_code == 403
    )
    assert status_of(app, review_task["guid"]) == TASK_READY
    with app.app_context():
        denials = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "access.denied")
        ).all()
        assert [d.task_guid for d in denials] == [review_task["guid"]] * 2
        assert all(d.actor_id == dpo.user_id for d in denials)


def test_hostile_text_from_bpmn_form_and_registry_is_escaped(app, web, hostile_task):
    html = web.page(f"/tasks/{hostile_task['guid']}")

    assert SCRIPT not in html
    assert "alert(3)</script> Check" not in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt; Check" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Choice" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Eve" in html
    assert "<strong>carefully</strong>" in html
    assert 'href="javascript:' not in html
    assert 'href="https://example.org/help"' in html


def test_the_registry_values_the_purpose_allows_are_shown_and_the_read_audited(
    app, web, hostile_task
):
    html = web.page(f"/tasks/{hostile_task['guid']}")

    section = html[html.index("Data from the registry") :]
    assert "Employee name" in section
    assert EMPLOYEE["bsn"] not in html
    with app.app_context():
        [event] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "task.field_read")
        ).all()
        assert event.actor_id == web.user_id
        assert event.details["fields"] == ["hr.employees.name"]


def test_a_subject_that_cannot_be_found_is_said_and_no_registry_value_shown(
    app, web, deploy, start_instance, systems
):
    forms = {"hostile_form": json.dumps(HOSTILE_FORM).encode()}
    assert deploy(HOSTILE_BPMN, "hostile_case.bpmn", forms).status_code == 201
    subject = {"nickname": "Bertie"}
    instance = start_instance("hostile_case", data={"subject": subject})
    task = ready_task(app, instance["id"])

    html = web.page(f"/tasks/{task.task_guid}")

    assert "nickname" in html
    assert "Bertie" not in html
    assert "Data from the registry" not in html
    with app.app_context():
        assert not db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "task.field_read")
        ).all()


# --- completing ---------------------------------------------------------------------


def test_an_invalid_value_is_shown_beside_its_field_and_nothing_is_completed(
    app, web, review_task
):
    reply = web.post(
        f"/tasks/{review_task['guid']}",
        {"summary": "Quarterly access review", "due_date": "31/02/2026"},
    )

    html = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "nothing was saved" in html
    assert "must be a valid date" in field_block(html, "due_date")
    assert 'value="31/02/2026"' in field_block(html, "due_date")
    assert "Quarterly access review</textarea>" in html
    assert status_of(app, review_task["guid"]) == TASK_READY


def test_correcting_the_value_completes_the_task_and_the_instance_advances(
    app, web, review_task
):
    path = f"/tasks/{review_task['guid']}"
    web.post(path, {"summary": "Quarterly access review", "due_date": "31/02/2026"})

    reply = web.post(path, {"summary": "Quarterly access review", "due_date": ""})

    assert reply.status_code == 303
    assert reply.headers["Location"].endswith("/inbox")
    assert status_of(app, review_task["guid"]) == TASK_COMPLETED
    following = ready_task(app, review_task["instance_id"])
    assert following is not None and following.bpmn_id == "approve"
    inbox = web.get("/inbox").get_data(as_text=True)
    assert "Task completed: Prepare the review." in inbox


def test_a_missing_required_field_is_named_beside_it(app, web, review_task):
    reply = web.post(f"/tasks/{review_task['guid']}", {"due_date": "2026-04-01"})

    html = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "is required" in field_block(html, "summary")
    assert 'value="2026-04-01"' in html


def test_a_task_already_completed_says_so_and_changes_nothing(
    app, web, officer, review_task
):
    path = f"/tasks/{review_task['guid']}"
    completed = officer.post(
        f"/api/v1/tasks/{review_task['guid']}/complete",
        json={"data": {"summary": "Done by Olga"}},
    )
    assert completed.status_code == 200

    reply = web.post(path, {"summary": "Mine instead"})

    html = reply.get_data(as_text=True)
    assert reply.status_code == 409
    assert "This task was already completed by olga" in html
    assert "Nothing you sent now was saved." in html
    assert 'name="summary"' not in html
    with app.app_context():
        task = db.session.get(HumanTask, review_task["guid"])
        assert task.completed_by_id == officer.user_id


def test_a_double_submit_gets_the_already_completed_page(app, web, review_task):
    path = f"/tasks/{review_task['guid']}"
    assert web.post(path, {"summary": "First"}).status_code == 303

    reply = web.post(path, {"summary": "Second"})

    assert reply.status_code == 409
    assert "already completed by you" in reply.get_data(as_text=True)


def test_a_task_claimed_by_another_officer_names_them_and_is_not_completed(
    app, web, officer, review_task
):
    assert officer.post(f"/api/v1/tasks/{review_task['guid']}/claim").status_code == 200

    page = web.page(f"/tasks/{review_task['guid']}")
    reply = web.post(f"/tasks/{review_task['guid']}", {"summary": "Kept text"})

    assert "olga has claimed this task" in page
    html = reply.get_data(as_text=True)
    assert reply.status_code == 409
    assert "Another user has claimed this task." in html
    assert "Kept text</textarea>" in html
    assert status_of(app, review_task["guid"]) == TASK_READY


def test_a_bad_number_is_a_field_error_and_the_other_values_are_kept(
    app, web, hostile_task
):
    reply = web.post(
        f"/tasks/{hostile_task['guid']}",
        {"count": "abc", "choice": "b", "note": f"{SCRIPT} typed"},
    )

    html = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "must be a whole number" in field_block(html, "count")
    assert 'value="abc"' in field_block(html, "count")
    assert '<option value="b" selected>' in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; typed</textarea>" in html
    assert SCRIPT not in html
    assert status_of(app, hostile_task["guid"]) == TASK_READY


def test_rows_of_an_array_are_parsed_to_a_list_and_empty_rows_dropped(
    app, web, hostile_task
):
    reply = web.post(
        f"/tasks/{hostile_task['guid']}",
        {
            "count": "2",
            "choice": "a",
            "items-0-label": "",
            "items-0-amount": "",
            "items-1-label": "Laptop",
            "items-1-amount": "2.5",
            "items-3-label": "Badge",
        },
    )

    assert reply.status_code == 303, reply.get_data(as_text=True)
    following = ready_task(app, hostile_task["instance_id"])
    with app.app_context():
        instance = instances.get_instance(hostile_task["instance_id"])
        data = instances.load(instance).task_data(following.task_guid)
    assert data["items"] == [{"label": "Laptop", "amount": 2.5}, {"label": "Badge"}]
    assert data["count"] == 2


def test_an_error_in_a_row_is_shown_beside_that_row_s_field(app, web, hostile_task):
    reply = web.post(
        f"/tasks/{hostile_task['guid']}",
        {"count": "1", "choice": "a", "items-0-amount": "", "items-2-amount": "4"},
    )

    html = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "is required" in field_block(html, "items-2-label")
    assert 'value="4"' in field_block(html, "items-2-amount")


def test_an_empty_array_of_rows_still_offers_one_row_and_a_template(web, hostile_task):
    html = web.page(f"/tasks/{hostile_task['guid']}")

    assert 'name="items-0-label"' in html
    assert re.search(r"<template>.*name=\"items-__index__-label\"", html, re.S)
    assert "Add row" in html


def test_the_purpose_is_named_and_described_from_the_registry(web, hostile_task):
    html = web.page(f"/tasks/{hostile_task['guid']}")

    section = html[html.index('id="purpose-h"') : html.index('id="deadlines-h"')]
    assert "Leave management" in section
    assert "Recording, approving and planning employees&#39; leave." in section


def test_a_task_without_a_form_is_completed_with_its_button(app, web, hostile_task):
    web.post(f"/tasks/{hostile_task['guid']}", {"count": "1", "choice": "a"})
    after = ready_task(app, hostile_task["instance_id"])

    html = web.page(f"/tasks/{after.task_guid}")
    reply = web.post(f"/tasks/{after.task_guid}", {})

    assert "Complete the task" in html
    assert reply.status_code == 303
    assert status_of(app, after.task_guid) == TASK_COMPLETED
