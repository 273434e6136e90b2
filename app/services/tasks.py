"""The human-task queue: list, claim, unclaim and complete, one winner per task."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from app.engine import TaskNotReady
from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.extensions import db
from app.models import Deadline, FormVersion, HumanTask, Instance, User
from app.models.deadlines import PENDING
from app.models.instances import RUNNING, TASK_COMPLETED, TASK_READY
from app.models.types import utcnow
from app.services import audit, forms, instances, task_data
from app.services.definitions import WORK_ROLES
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)


# The inbox reads a queue in the order of ix_human_tasks_queue, NULL due times last
# (PostgreSQL's index order; SQLite since 3.30 reads NULLS LAST too).
QUEUE_ORDER = (
    HumanTask.due_at.asc().nulls_last(),
    HumanTask.created_at,
    HumanTask.task_guid,
)


def list_tasks(
    user: User,
    *,
    status: str | None = TASK_READY,
    bpmn_process_id: str | None = None,
    instance_id: str | None = None,
    assigned: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """Tasks of the lanes the user's roles hold, soonest due first."""
    query = select(HumanTask).where(HumanTask.role.in_(user.roles))
    if status:
        query = query.where(HumanTask.status == status)
    if instance_id:
        query = query.where(HumanTask.instance_id == instance_id)
    query = _filtered(query, user, bpmn_process_id, assigned)
    return paginate(query, QUEUE_ORDER, page, page_size)


def _filtered(
    query: Select, user: User, bpmn_process_id: str | None, assigned: str | None
) -> Select:
    """The filters the inbox and the API share: process, and who claimed the task."""
    if bpmn_process_id:
        query = query.where(HumanTask.bpmn_process_id == bpmn_process_id)
    if assigned == "me":
        query = query.where(HumanTask.claimed_by_id == user.id)
    elif assigned == "nobody":
        query = query.where(HumanTask.claimed_by_id.is_(None))
    return query


QUEUE_STATUSES = (TASK_READY, TASK_COMPLETED)
LEGAL, TARGET = "legal", "internal_target"
BAD_CURSOR = "The page link is not valid; start again from the first page."


@dataclass
class QueueEntry:
    """One row of a queue: the task, who claimed it, its instance's deadlines."""

    task: HumanTask
    claimed_by: str | None
    business_key: str | None
    legal_due_at: datetime | None = None
    target_due_at: datetime | None = None


@dataclass
class QueuePage:
    role: str
    entries: list[QueueEntry]
    # The cursor that reads the next page; None on the last one.
    after: str | None


def queue_roles(user: User) -> list[str]:
    """The queues (lane roles) the user works, in a stable order."""
    return [role for role in WORK_ROLES if role in user.roles]


def queue_page(
    user: User,
    role: str,
    *,
    after: str | None = None,
    status: str = TASK_READY,
    bpmn_process_id: str | None = None,
    assigned: str | None = None,
    limit: int = 50,
) -> QueuePage:
    """One page of a lane's queue, soonest due first, read on from a cursor.

    Keyset paging: each page costs the same however deep it is, no OFFSET scan.
    """
    if role not in user.roles:
        raise Forbidden(
            f"The '{role}' queue belongs to a role you do not hold.",
            code="lane-forbidden",
            audit_denial={"role": role},
        )
    query = (
        select(HumanTask, User.name, Instance.business_key)
        .join(Instance, Instance.id == HumanTask.instance_id)
        .outerjoin(User, User.id == HumanTask.claimed_by_id)
        .where(HumanTask.role == role, HumanTask.status == status)
    )
    query = _filtered(query, user, bpmn_process_id, assigned)
    if after:
        query = query.where(_after(*_decode_cursor(after)))
    rows = db.session.execute(query.order_by(*QUEUE_ORDER).limit(limit + 1)).all()
    entries = [QueueEntry(task, name, key) for task, name, key in rows[:limit]]
    _attach_deadlines(entries)
    more = len(rows) > limit
    return QueuePage(role, entries, _cursor(entries[-1].task) if more else None)


def _after(due: datetime | None, created: datetime, guid: str) -> ColumnElement[bool]:
    """Rows strictly after the cursor in QUEUE_ORDER."""
    later = or_(
        HumanTask.created_at > created,
        and_(HumanTask.created_at == created, HumanTask.task_guid > guid),
    )
    if due is None:
        return and_(HumanTask.due_at.is_(None), later)
    return or_(
        HumanTask.due_at > due,
        and_(HumanTask.due_at == due, later),
        HumanTask.due_at.is_(None),
    )


def _cursor(task: HumanTask) -> str:
    due = task.due_at.isoformat() if task.due_at else ""
    return f"{due}~{task.created_at.isoformat()}~{task.task_guid}"


def _decode_cursor(cursor: str) -> tuple[datetime | None, datetime, str]:
    parts = cursor.split("~")
    if len(parts) != 3 or not parts[2] or len(parts[2]) > 36:
        raise BadRequest(BAD_CURSOR, code="bad-cursor")
    try:
        due = datetime.fromisoformat(parts[0]) if parts[0] else None
        created = datetime.fromisoformat(parts[1])
    except ValueError:
        raise BadRequest(BAD_CURSOR, code="bad-cursor") from None
    if created.tzinfo is None or (due is not None and due.tzinfo is None):
        raise BadRequest(BAD_CURSOR, code="bad-cursor")
    return due, created, parts[2]


def _attach_deadlines(entries: list[QueueEntry]) -> None:
    """The soonest pending legal deadline and target of each instance, one query."""
    instance_ids = {entry.task.instance_id for entry in entries}
    if not instance_ids:
        return
    # No ORDER BY: sorting by due time would lead SQLite's planner to walk every
    # pending deadline in ix_deadlines_due instead of this page's instances.
    pending = db.session.execute(
        select(Deadline.instance_id, Deadline.kind, Deadline.due_at).where(
            Deadline.instance_id.in_(instance_ids),
            Deadline.kind.in_((LEGAL, TARGET)),
            Deadline.state == PENDING,
        )
    ).all()
    soonest: dict[tuple[str, str], datetime] = {}
    for instance_id, kind, due_at in pending:
        key = (instance_id, kind)
        if key not in soonest or due_at < soonest[key]:
            soonest[key] = due_at
    for entry in entries:
        entry.legal_due_at = soonest.get((entry.task.instance_id, LEGAL))
        entry.target_due_at = soonest.get((entry.task.instance_id, TARGET))


# Counting a queue walks its index entries; beyond this many the inbox says
# "more than", so a page costs the same whatever the queue's length.
COUNT_LIMIT = 1_000


def queue_counts(user: User, status: str = TASK_READY) -> dict[str, int]:
    """Tasks per queue of the user, up to COUNT_LIMIT + 1 each (index only)."""
    counts = {}
    for role in queue_roles(user):
        capped = (
            select(HumanTask.task_guid)
            .where(HumanTask.role == role, HumanTask.status == status)
            .limit(COUNT_LIMIT + 1)
            .subquery()
        )
        counted = db.session.scalar(select(func.count()).select_from(capped))
        if counted:
            counts[role] = counted
    return counts


def get_task(user: User, task_guid: str) -> HumanTask:
    """The task if the user's roles hold its lane; 403 (audited) if they do not."""
    task = db.session.get(HumanTask, task_guid)
    if task is None:
        raise NotFound(f"No task with id '{task_guid}'.")
    if task.role not in user.roles:
        _deny(user, task)
    return task


def _deny(user: User, task: HumanTask) -> None:
    raise Forbidden(
        f"This task belongs to the '{task.role}' lane, which your roles do not hold.",
        code="lane-forbidden",
        audit_denial={"task_guid": task.task_guid, "instance_id": task.instance_id},
    )


def _locked_task(user: User, task_guid: str) -> tuple[HumanTask, Instance]:
    """Lock the task's instance first, then read the task row fresh."""
    task = get_task(user, task_guid)
    instance = instances.lock_instance(task.instance_id)
    fresh = db.session.scalar(
        select(HumanTask)
        .where(HumanTask.task_guid == task_guid)
        .execution_options(populate_existing=True)
    )
    return fresh, instance


def _require_ready(task: HumanTask) -> None:
    if task.status != TASK_READY:
        raise Conflict(
            f"The task is {task.status}, no longer ready.", code="task-not-ready"
        )


def claim(user: User, task_guid: str) -> HumanTask:
    task, _ = _locked_task(user, task_guid)
    _require_ready(task)
    if task.claimed_by_id not in (None, user.id):
        raise Conflict("Another user has claimed this task.", code="task-claimed")
    task.claimed_by_id = user.id
    audit.record(
        "task.claimed",
        actor_id=user.id,
        instance_id=task.instance_id,
        task_guid=task_guid,
    )
    return task


def unclaim(user: User, task_guid: str) -> HumanTask:
    task, _ = _locked_task(user, task_guid)
    _require_ready(task)
    if task.claimed_by_id is None:
        return task
    if task.claimed_by_id != user.id and not user.has_role("dpo"):
        raise Conflict("Another user has claimed this task.", code="task-claimed")
    task.claimed_by_id = None
    audit.record(
        "task.unclaimed",
        actor_id=user.id,
        instance_id=task.instance_id,
        task_guid=task_guid,
    )
    return task


def form_of(task: HumanTask) -> FormVersion | None:
    if task.form_version_id is None:
        return None
    return db.session.get(FormVersion, task.form_version_id)


def _instance_data(task: HumanTask) -> dict[str, Any]:
    instance = instances.get_instance(task.instance_id)
    return instances.load(instance).task_data(task.task_guid)


def form_data(task: HumanTask) -> dict[str, Any]:
    """What the task's form declares: instance data, and registry values in purpose."""
    if task.status != TASK_READY:
        return {}
    return task_data.form_data(task, form_of(task), _instance_data(task))


def read_form_data(user: User, task: HumanTask) -> dict[str, Any]:
    """The form's data for a person to see; the registry fields shown are audited."""
    return show_form_data(user, task).data


def show_form_data(user: User, task: HumanTask) -> task_data.Shown:
    """The form's data with its notices; the registry fields shown are audited."""
    if task.status != TASK_READY:
        return task_data.Shown({})
    form = form_of(task)
    shown = task_data.shown_data(task, form, _instance_data(task))
    bound = task_data.bound_properties(form)
    ids = sorted(field_id for name, field_id in bound.items() if name in shown.data)
    if ids:
        _record_read(user, task, ids)
    return shown


def _record_read(user: User, task: HumanTask, field_ids: list[str]) -> None:
    """Registry values shown to a person: who, which task and purpose, which fields."""
    audit.record(
        "task.field_read",
        actor_id=user.id,
        instance_id=task.instance_id,
        task_guid=task.task_guid,
        purpose=task.purpose,
        fields=field_ids,
    )


def binds_registry(task: HumanTask) -> bool:
    """Whether the task's form shows registry fields, so that opening it is audited."""
    return bool(task_data.bound_properties(form_of(task)))


def field_value(user: User, task_guid: str, field_id: str) -> Any:
    """One registry field the task's form binds, for its subject and purpose."""
    task = get_task(user, task_guid)
    _require_ready(task)
    value = task_data.field_value(task, form_of(task), _instance_data(task), field_id)
    _record_read(user, task, [field_id])
    return value


def complete(user: User, task_guid: str, data: Any) -> tuple[HumanTask, Instance]:
    """Complete a ready task with validated data; a second completion gets 409."""
    task, instance = _locked_task(user, task_guid)
    _require_ready(task)
    if task.claimed_by_id not in (None, user.id):
        raise Conflict("Another user has claimed this task.", code="task-claimed")
    form = form_of(task)
    data = forms.validate_submission(form, data)
    data, bound_values = task_data.split_submission(task, form, data)
    running = instances.load(instance)
    subject_data = running.task_data(task_guid)
    first = _first_completion(instance)
    _mark_completed(task, user)
    audit.record(
        "task.completed",
        actor_id=user.id,
        instance_id=task.instance_id,
        task_guid=task.task_guid,
        bpmn_id=task.bpmn_id,
        fields=sorted([*data, *bound_values]),
    )
    try:
        instances.run_and_save(
            instance, running, user.id, lambda: running.complete_task(task_guid, data)
        )
    except TaskNotReady:
        raise Conflict("The task is no longer ready.", code="task-not-ready") from None
    # Last, so that a refused or conflicting completion leaves the systems as
    # they were: the connector commits before the service's own transaction.
    task_data.write(task, subject_data, bound_values, user.id)
    if first and instance.status == RUNNING:
        instances.announce(instance, running, "in_progress")
    logger.info("task %s of instance %s completed", task_guid, instance.id)
    return task, instance


def _first_completion(instance: Instance) -> bool:
    """Whether no human task of the instance has been completed yet."""
    done = db.session.scalar(
        select(HumanTask.task_guid)
        .where(HumanTask.instance_id == instance.id, HumanTask.status == TASK_COMPLETED)
        .limit(1)
    )
    return done is None


def _mark_completed(task: HumanTask, user: User) -> None:
    task.status = TASK_COMPLETED
    task.completed_by_id = user.id
    task.completed_at = utcnow()


def instructions_of(task: HumanTask) -> str | None:
    """The task's instructions as the designer wrote them (render them escaped)."""
    version = instances.get_instance(task.instance_id).definition_version
    for summary in version.user_tasks:
        if summary["bpmn_id"] == task.bpmn_id:
            return summary.get("instructions")
    return None
