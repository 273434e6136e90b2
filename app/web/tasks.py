"""The task page: a user task's form from its JSON Schema, and its completion."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from markdown_it import MarkdownIt
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from app.database import will_write
from app.errors import Conflict, Unprocessable
from app.extensions import db
from app.models import HumanTask, User
from app.models.instances import TASK_READY
from app.services import deadlines, instances, registry, task_data, tasks, users
from app.web import schema_form
from app.web.auth import current_web_user, login_required

bp = Blueprint("web_tasks", __name__)

INBOX_PATH = "/inbox"
# Raw HTML in instructions is shown as text; markdown-it refuses javascript: links.
MARKDOWN = MarkdownIt("commonmark", {"html": False})
COMPLETED = "Task completed: {}."


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def instructions_html(text: str | None) -> Markup | None:
    """The designer's instructions as HTML, with any raw HTML in them escaped."""
    if not text:
        return None
    # Safe to mark: markdown-it escapes every character of the source it copies.
    return Markup(MARKDOWN.render(text))


@bp.get("/tasks/<task_guid>")
@login_required
def task(task_guid: str) -> Any:
    user = current_web_user()
    task = tasks.get_task(user, task_guid)
    return _page(user, task)


@bp.post("/tasks/<task_guid>")
@login_required
def complete(task_guid: str) -> Any:
    user = current_web_user()
    task = tasks.get_task(user, task_guid)
    if task.status != TASK_READY:
        return _page(user, task, status=409)
    form = tasks.form_of(task)
    schema = form.schema if form else {}
    parsed = schema_form.parse(schema, request.form, _zone())
    if parsed.errors:
        return _page(user, task, request.form, parsed.errors, status=422)
    try:
        tasks.complete(user, task_guid, parsed.data)
    except Unprocessable as refusal:
        return _refused(user, task_guid, refusal, parsed)
    except Conflict as conflict:
        db.session.rollback()
        task = tasks.get_task(user, task_guid)
        return _page(user, task, request.form, notice=conflict.detail, status=409)
    db.session.commit()
    flash(COMPLETED.format(task.title), "success")
    return redirect(_inbox_url(), code=303)


def _refused(
    user: User, task_guid: str, refusal: Unprocessable, parsed: schema_form.Parsed
) -> Any:
    db.session.rollback()
    task = tasks.get_task(user, task_guid)
    return _page(
        user,
        task,
        request.form,
        refusal.errors,
        notice=None if refusal.errors else refusal.detail,
        parsed=parsed,
        status=422,
    )


def _inbox_url() -> str:
    if "web_inbox.inbox" in current_app.view_functions:
        return url_for("web_inbox.inbox")
    return INBOX_PATH


def _page(
    user: User,
    task: HumanTask,
    raw: MultiDict | None = None,
    errors: Any = None,
    *,
    notice: str | None = None,
    parsed: schema_form.Parsed | None = None,
    status: int = 200,
) -> tuple[str, int]:
    form = tasks.form_of(task)
    ready = task.status == TASK_READY
    shown = _read_data(user, task, form) if ready else task_data.Shown({})
    data = shown.data
    schema = form.schema if form else {}
    if raw is None:
        raw = schema_form.as_form(schema, data, _zone())
    fields = schema_form.fields(schema, raw, data)
    by_field, unplaced = _errors(errors, fields, parsed)
    schema_form.attach_errors(fields, by_field)
    return render_template(
        "web/task.html",
        task=task,
        instance=instances.get_instance(task.instance_id),
        schema=schema,
        fields=fields,
        ready=ready,
        invalid=bool(errors),
        unplaced=unplaced,
        notice=notice,
        registry_notices=shown.notices,
        people=_people(task),
        instructions=instructions_html(tasks.instructions_of(task)),
        purpose=registry.find_purpose(task.purpose) if task.purpose else None,
        registry_values=_registry_values(form, schema, data),
        deadlines=deadlines.for_instance(task.instance_id),
        next_path=request.path,
    ), status


def _read_data(user: User, task: HumanTask, form: Any) -> task_data.Shown:
    """The form's data and why registry values are missing; showing them is audited."""
    if not task_data.bound_properties(form):
        return task_data.Shown(tasks.form_data(task))
    # A fresh transaction that may write, even on a GET.
    will_write()
    db.session.commit()
    shown = tasks.show_form_data(user, task)
    db.session.commit()
    return shown


def _errors(
    errors: Any, fields: list[schema_form.Field], parsed: schema_form.Parsed | None
) -> tuple[dict[str, str], list[str]]:
    """Local parse errors are keyed by path already; the service's are a list."""
    if isinstance(errors, dict):
        return errors, []
    return schema_form.field_errors(errors, fields, parsed)


def _people(task: HumanTask) -> dict[int, str]:
    return users.names_of({task.claimed_by_id, task.completed_by_id})


def _registry_values(
    form: Any, schema: dict[str, Any], data: dict[str, Any]
) -> list[tuple[str, Any]]:
    """(label, value) of each registry field the task's purpose lets it see."""
    properties = schema.get("properties", {})
    return [
        (str(properties.get(name, {}).get("title") or name), data[name])
        for name in task_data.bound_properties(form)
        if name in data
    ]
