"""The human-task queue: list, claim, unclaim and complete, one winner per task."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from app.engine import TaskNotReady
from app.errors import Conflict, Forbidden, NotFound
from app.extensions import db
from app.models import FormVersion, HumanTask, Instance, User
from app.models.instances import RUNNING, TASK_COMPLETED, TASK_READY
from app.models.types import utcnow
from app.services import audit, forms, instances, task_data
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)


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
    if bpmn_process_id:
        query = query.where(HumanTask.bpmn_process_id == bpmn_process_id)
    if instance_id:
        query = query.where(HumanTask.instance_id == instance_id)
    if assigned == "me":
        query = query.where(HumanTask.claimed_by_id == user.id)
    elif assigned == "nobody":
        query = query.where(HumanTask.claimed_by_id.is_(None))
    order = (
        HumanTask.due_at.is_(None),
        HumanTask.due_at,
        HumanTask.created_at,
        HumanTask.task_guid,
    )
    return paginate(query, order, page, page_size)


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


def field_value(user: User, task_guid: str, field_id: str) -> Any:
    """One registry field the task's form binds, for its subject and purpose."""
    task = get_task(user, task_guid)
    _require_ready(task)
    value = task_data.field_value(task, form_of(task), _instance_data(task), field_id)
    audit.record(
        "task.field_read",
        actor_id=user.id,
        instance_id=task.instance_id,
        task_guid=task.task_guid,
        purpose=task.purpose,
        fields=[field_id],
    )
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
