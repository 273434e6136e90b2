"""The inbox: the tasks of the user's queues, soonest due first; claim and release."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from app.errors import BadRequest, Conflict
from app.extensions import db
from app.models import HumanTask, User
from app.models.instances import TASK_READY
from app.services import definitions, tasks
from app.services.definitions import WORK_ROLES
from app.web.auth import current_web_user, roles_required

bp = Blueprint("web_inbox", __name__)

PAGE_SIZE = 25
QUEUE_LABELS = {
    "dpo": "Data protection officer",
    "privacy_officer": "Privacy officer",
    "manager": "Manager",
    "process_designer": "Process designer",
}
ASSIGNED = {"": "Anyone", "me": "Me", "nobody": "Nobody"}
STATUSES = {TASK_READY: "Waiting", "completed": "Completed"}


def _filters() -> dict[str, str]:
    """The filters of the query string, refused in plain words when unknown."""
    status = request.args.get("status", TASK_READY)
    assigned = request.args.get("assigned", "")
    if status not in tasks.QUEUE_STATUSES:
        raise BadRequest("The status filter must be waiting or completed.")
    if assigned not in ASSIGNED:
        raise BadRequest("The assigned filter must be anyone, me or nobody.")
    process = request.args.get("process", "")
    return {"status": status, "assigned": assigned, "process": process}


def _queues(user: User, filters: dict[str, str]) -> list[tasks.QueuePage]:
    queue = request.args.get("queue")
    roles = [queue] if queue else tasks.queue_roles(user)
    return [
        tasks.queue_page(
            user,
            role,
            after=request.args.get("after") if queue else None,
            status=filters["status"],
            bpmn_process_id=filters["process"] or None,
            assigned=filters["assigned"] or None,
            limit=PAGE_SIZE,
        )
        for role in roles
    ]


def _link(endpoint: str, path: str, **values: str) -> str:
    """The URL of a page another blueprint serves, or its path until it does."""
    if endpoint in current_app.view_functions:
        return url_for(endpoint, **values)
    return path


def _task_url(task: HumanTask) -> str:
    return _link("web_tasks.task", f"/tasks/{task.task_guid}", task_guid=task.task_guid)


def _instance_url(task: HumanTask) -> str:
    return _link(
        "web_instances.instance",
        f"/instances/{task.instance_id}",
        instance_id=task.instance_id,
    )


def _page_url(**values: str | None) -> str:
    """The inbox with the current filters kept and the given values changed."""
    args = {k: v for k, v in request.args.items() if k not in ("queue", "after")}
    args.update({k: v for k, v in values.items() if v})
    return url_for("web_inbox.inbox", **args)


def _render(message: str | None = None, status: int = 200) -> tuple[str, int]:
    user = current_web_user()
    filters = _filters()
    queues = _queues(user, filters)
    plain = not filters["process"] and not filters["assigned"]
    processes = definitions.list_definitions()
    page = render_template(
        "web/inbox.html",
        user=user,
        queues=queues,
        single=bool(request.args.get("queue")),
        counts=tasks.queue_counts(user, filters["status"]) if plain else {},
        count_limit=tasks.COUNT_LIMIT,
        filters=filters,
        processes=processes,
        process_names={p.bpmn_process_id: p.name for p in processes},
        labels=QUEUE_LABELS,
        assigned_choices=ASSIGNED,
        status_choices=STATUSES,
        task_url=_task_url,
        instance_url=_instance_url,
        page_url=_page_url,
        here=request.full_path if request.method == "GET" else url_for(".inbox"),
        message=message,
    )
    return page, status


@bp.get("/inbox")
@roles_required(*WORK_ROLES)
def inbox() -> Any:
    return _render()


def _next_url() -> str:
    """Where the form asked to return: a local path only, else the inbox."""
    target = request.form.get("next", "")
    local = target.startswith("/") and not target.startswith("//")
    if not local or "\\" in target or any(ord(c) < 32 for c in target):
        return url_for("web_inbox.inbox")
    return target


def _act(action: Callable[[User, str], HumanTask], task_guid: str) -> Any:
    try:
        action(current_web_user(), task_guid)
    except Conflict as conflict:
        db.session.rollback()
        return _render(conflict.detail, 409)
    db.session.commit()
    return redirect(_next_url())


@bp.post("/tasks/<task_guid>/claim")
@roles_required(*WORK_ROLES)
def claim(task_guid: str) -> Any:
    return _act(tasks.claim, task_guid)


@bp.post("/tasks/<task_guid>/release")
@roles_required(*WORK_ROLES)
def release(task_guid: str) -> Any:
    return _act(tasks.unclaim, task_guid)
