"""Instance pages: the list, and one instance with its diagram and its history."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request

from app.calendar import as_period
from app.database import will_write
from app.errors import NotFound
from app.extensions import db
from app.models import AuditEvent, HumanTask, Instance, Letter
from app.models.instances import INSTANCE_STATUSES, TASK_READY
from app.roles import OFFICERS
from app.services import audit, deadlines, definitions, instances, letters, users
from app.web.auth import current_web_user, roles_required

bp = Blueprint("web_instances", __name__)

# The roles the API's /api/v1/instances endpoints allow for reading.
READERS = OFFICERS
PAGE_SIZE = 25
MAX_PAGE_DIGITS = 6

ACTIONS = {
    "access.denied": "was refused access",
    "deadline.fired": "deadline fired",
    "deadline.set": "set a deadline",
    "instance.cancelled": "cancelled the instance",
    "instance.completed": "the instance completed",
    "instance.retried": "retried the failed tasks",
    "instance.started": "started the instance",
    "letter.written": "wrote a letter",
    "mail.queued": "queued a mail",
    "message.delivered": "delivered a message",
    "task.claimed": "claimed a task",
    "task.completed": "completed a task",
    "task.failed": "a task failed",
    "task.field_read": "read a field of a task",
    "task.fields_written": "wrote fields of a task",
    "task.unclaimed": "released a task",
}
# Audit details that name things (never values): safe to show on the page.
NAMED_DETAILS = {
    "bpmn_id": "Element",
    "deadline": "Deadline",
    "kind": "Kind",
    "template": "Template",
    "message_name": "Message",
    "fields": "Fields",
    "input_fields": "Input fields",
    "payload_fields": "Payload fields",
    "correlation_keys": "Correlation keys",
    "attachments": "Attachments",
}
REMOVED = "a removed user"
ELEMENT_WORDS = re.compile(r"(?<=[a-z])(?=[A-Z])")


@bp.get("/instances", endpoint="instances")
@roles_required(*READERS)
def instance_list() -> Any:
    process = request.args.get("process", "").strip()
    status = request.args.get("status", "").strip()
    page = request.args.get("page", "1").strip()
    problem = _filter_problem(status, page)
    found = None
    if problem is None:
        found = instances.list_instances(
            bpmn_process_id=process or None,
            status=status or None,
            page=int(page),
            page_size=PAGE_SIZE,
        )
    processes = definitions.list_definitions()
    page_html = render_template(
        "web/instances.html",
        found=found,
        problem=problem,
        process=process,
        status=status,
        statuses=INSTANCE_STATUSES,
        processes=processes,
        process_names={d.bpmn_process_id: d.name for d in processes},
    )
    return page_html, 422 if problem else 200


def _filter_problem(status: str, page: str) -> str | None:
    if status and status not in INSTANCE_STATUSES:
        return f"There is no status '{status}'; choose one from the list."
    if not page.isdigit() or int(page) < 1 or len(page) > MAX_PAGE_DIGITS:
        return "The page number must be a whole number from 1 to 999999."
    return None


@bp.get("/instances/<instance_id>")
@roles_required(*READERS)
def instance(instance_id: str) -> Any:
    found = instances.get_instance(instance_id)
    tasks = instances.tasks_of(found)
    events = audit.events_for_instance(found.id)
    steps = instances.history(found)
    written = letters.letters_of(found.id)
    names = users.names_of(_actor_ids(found, tasks, events, steps, written))
    titles = {task.task_guid: task.title for task in tasks}
    return render_template(
        "web/instance.html",
        instance=found,
        process_name=found.definition_version.definition.name,
        open_tasks=[task for task in tasks if task.status == TASK_READY],
        steps=[_step(entry, names) for entry in steps],
        events=[_event(event, names, titles) for event in events],
        deadlines=[(d, _rule(d.rule)) for d in deadlines.for_instance(found.id)],
        letters=written,
        names=names,
        diagram=instances.diagram(found),
    )


@bp.get("/instances/<instance_id>/diagram.json")
@roles_required(*READERS)
def diagram(instance_id: str) -> Any:
    return jsonify(instances.diagram(instances.get_instance(instance_id)))


@bp.get("/instances/<instance_id>/letters/<letter_id>.pdf")
@roles_required(*READERS)
def letter_pdf(instance_id: str, letter_id: str) -> Response:
    """A letter of this instance as a PDF download, as the letters API gives it."""
    will_write()
    letter = letters.get_letter(letter_id)
    if letter.instance_id != instances.get_instance(instance_id).id:
        raise NotFound(f"Instance {instance_id} has no letter {letter_id}.")
    content = letters.pdf(letter)
    letters.record_read(letter, current_web_user().id, "pdf")
    db.session.commit()
    reply = Response(content, mimetype="application/pdf")
    filename = letters.pdf_filename(letter)
    reply.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return reply


def _actor_ids(
    found: Instance,
    tasks: list[HumanTask],
    events: list[AuditEvent],
    steps: list[dict[str, Any]],
    written: list[Letter],
) -> set[int | None]:
    ids = {found.started_by_id}
    ids.update(letter.created_by for letter in written)
    ids.update(event.actor_id for event in events)
    ids.update(task.claimed_by_id for task in tasks)
    ids.update(task.completed_by_id for task in tasks)
    ids.update(entry["completed_by_id"] for entry in steps)
    return ids


def _rule(rule: dict[str, Any]) -> str:
    """'Art 12(3), 1 month': the article and the period (or how it was set)."""
    how = rule.get("rule")
    if rule.get("period"):
        period = as_period(rule["period"])
        unit = period.unit.value
        how = f"{period.amount} {unit[:-1] if period.amount == 1 else unit}"
    return ", ".join(part for part in (rule.get("article"), how) if part)


def _step(entry: dict[str, Any], names: dict[int, str]) -> dict[str, Any]:
    completed_at = entry["completed_at"]
    return {
        "title": entry["title"],
        "kind": _element_kind(entry["type"]),
        "by": names.get(entry["completed_by_id"]),
        "at": datetime.fromisoformat(completed_at) if completed_at else None,
    }


def _element_kind(type_name: str) -> str:
    """'UserTask' becomes 'user task', the spec class named in plain words."""
    name = type_name.removeprefix("Bpmn").removesuffix("Task")
    words = ELEMENT_WORDS.sub(" ", name).lower()
    return f"{words} task".strip() if type_name.endswith("Task") else words


def _event(
    event: AuditEvent, names: dict[int, str], titles: dict[str, str]
) -> dict[str, Any]:
    return {
        "at": event.occurred_at,
        "actor": names.get(event.actor_id, REMOVED) if event.actor_id else None,
        "action": ACTIONS.get(event.action, _plain(event.action)),
        "task": titles.get(event.task_guid) if event.task_guid else None,
        "details": _named_details(event.details or {}),
    }


def _plain(action: str) -> str:
    return action.replace(".", " ").replace("_", " ")


def _named_details(details: dict[str, Any]) -> list[tuple[str, str]]:
    shown = []
    for key, label in NAMED_DETAILS.items():
        value = details.get(key)
        if isinstance(value, list):
            value = ", ".join(str(item) for item in value)
        if value:
            shown.append((label, str(value)))
    return shown
