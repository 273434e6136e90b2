"""Start, load and save instances; state and read models change together."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm.exc import StaleDataError

from app.engine import EngineTaskError, Refused, RunningInstance
from app.errors import Conflict, NotFound, Unprocessable
from app.extensions import db
from app.models import HumanTask, Instance, Subscription
from app.models.instances import (
    CANCELLED,
    COMPLETED,
    ERROR,
    RUNNING,
    TASK_CANCELLED,
    TASK_READY,
)
from app.models.types import utcnow
from app.services import audit, context, deadlines, definitions, events
from app.services.paging import Page, paginate
from app.services.runtime import engine

logger = logging.getLogger(__name__)


def start(
    bpmn_process_id: str,
    data: dict[str, Any],
    business_key: str | None,
    actor_id: int | None,
) -> Instance:
    """Start the latest version of a process and run it to its first wait."""
    definition = definitions.get_definition(bpmn_process_id)
    version = definition.latest
    parsed = definitions.specs.get(version)
    running = engine().start(parsed.spec, parsed.subprocess_specs, data)
    instance = Instance(
        id=str(uuid.uuid4()),
        definition_version=version,
        bpmn_process_id=bpmn_process_id,
        business_key=business_key,
        status=RUNNING,
        started_by_id=actor_id,
    )
    audit.record(
        "instance.started",
        actor_id=actor_id,
        instance_id=instance.id,
        definition_version=version.id,
        input_fields=sorted(data),
    )
    # The row exists before the first step: operators may write rows that name it.
    instance.state = engine().dump(running)
    instance.state_format = engine().state_version()
    db.session.add(instance)
    db.session.flush()
    run_and_save(instance, running, actor_id)
    logger.info("started instance %s of %s", instance.id, bpmn_process_id)
    return instance


def get_instance(instance_id: str) -> Instance:
    instance = db.session.get(Instance, instance_id)
    if instance is None:
        raise NotFound(f"No instance with id '{instance_id}'.")
    return instance


def lock_instance(instance_id: str) -> Instance:
    """The instance row, locked for this transaction and read fresh."""
    # SQLite transactions here begin IMMEDIATE (see app.database): already one writer.
    instance = db.session.scalar(
        select(Instance)
        .where(Instance.id == instance_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if instance is None:
        raise NotFound(f"No instance with id '{instance_id}'.")
    return instance


def extend_deadline(instance_id: str, name: str, by: str, reason: str) -> Any:
    """Extend a deadline from outside the process, moving its waiting timer too."""
    instance = lock_instance(instance_id)
    running = load(instance)
    with context.stepping(instance.id, running):
        moved = deadlines.extend(instance_id, name, by, reason)
    save(instance, running)
    return moved


def load(instance: Instance) -> RunningInstance:
    version = instance.definition_version
    parsed = definitions.specs.get(version)
    return engine().load(
        instance.state,
        parsed.spec,
        parsed.subprocess_specs,
        instance.state_format,
        lambda: version.spec_json,
    )


def run_and_save(
    instance: Instance,
    running: RunningInstance,
    actor_id: int | None,
    step: Callable[[], None] | None = None,
    refuse: bool = True,
) -> None:
    """Take one engine step (run to the next wait by default), then save it all.

    An operator's refusal of a step someone asked for is a 422 to them, and the
    caller's rollback leaves everything as it was; with `refuse=False` (nobody
    to tell, e.g. a timer) it is kept as a task error like any other.
    """
    try:
        with context.stepping(instance.id, running):
            (step or running.run)()
    except EngineTaskError as error:
        if refuse and isinstance(error, Refused):
            raise _refusal(error) from None
        save(instance, running, error)
        audit.record(
            "task.failed",
            actor_id=actor_id,
            instance_id=instance.id,
            task_guid=error.task_guid,
            bpmn_id=error.bpmn_id,
            kind=error.kind,
        )
        logger.info("instance %s failed in %s", instance.id, error.bpmn_id)
        return
    save(instance, running)
    if instance.status == COMPLETED:
        audit.record("instance.completed", actor_id=actor_id, instance_id=instance.id)
        announce(instance, running, "completed")
        logger.info("completed instance %s", instance.id)


def _refusal(error: Refused) -> Unprocessable:
    return Unprocessable(
        error.message, code=error.code, errors=error.errors, element_id=error.bpmn_id
    )


def announce(instance: Instance, running: RunningInstance, status: str) -> None:
    """Tell subscribers, and a request's own status callbacks, how it stands.

    OpenDSR status names: pending at intake, in_progress once its first task is
    done, completed, cancelled.
    """
    ids = {"instance_id": instance.id, "process_id": instance.bpmn_process_id}
    if status == "completed":
        events.emit("instance.completed", ids)
    data = running.data()
    if "request_type" in data and status == "completed":
        events.emit("request.completed", {**ids, "request_type": data["request_type"]})
    urls = data.get("status_callback_urls")
    if isinstance(urls, list) and urls:
        events.request_status(instance.id, urls, status)


def save(
    instance: Instance,
    running: RunningInstance,
    error: EngineTaskError | None = None,
    status: str | None = None,
) -> None:
    now = utcnow()
    instance.state = engine().dump(running)
    instance.state_format = engine().state_version()
    instance.updated_at = now
    instance.error = error.as_dict() if error else None
    instance.status = status or _status(running, error)
    if instance.status == COMPLETED:
        instance.completed_at = now
    _sync_tasks(instance, running)
    _sync_subscriptions(instance, running)
    try:
        db.session.flush()
    except StaleDataError:
        raise Conflict(
            "The instance changed while this request ran; reload and retry.",
            code="instance-changed",
        ) from None


def _status(running: RunningInstance, error: EngineTaskError | None) -> str:
    if error is not None or running.errored_tasks():
        return ERROR
    return COMPLETED if running.completed else RUNNING


def _sync_tasks(instance: Instance, running: RunningInstance) -> None:
    ready = {task.guid: task for task in running.ready_tasks()}
    rows = {
        row.task_guid: row
        for row in db.session.scalars(
            select(HumanTask).where(
                HumanTask.instance_id == instance.id,
                or_(HumanTask.status == TASK_READY, HumanTask.task_guid.in_(ready)),
            )
        )
    }
    for guid, row in rows.items():
        if row.status == TASK_READY and guid not in ready:
            row.status = TASK_CANCELLED
    form_ids = instance.definition_version.forms
    for guid, ready_task in ready.items():
        row = rows.get(guid)
        if row is not None and row.status == TASK_READY:
            continue
        task = ready_task.spec
        if row is None:
            row = HumanTask(task_guid=guid, instance_id=instance.id)
            db.session.add(row)
        row.bpmn_process_id = instance.bpmn_process_id
        row.bpmn_id, row.title, row.lane = task.bpmn_id, task.title, task.lane
        row.role = definitions.lane_role(task.lane) or definitions.DEFAULT_ROLE
        row.form_name, row.purpose = task.form, task.purpose
        row.form_version_id = form_ids.get(task.form) if task.form else None
        row.status, row.claimed_by_id, row.created_at = TASK_READY, None, utcnow()
        events.emit(
            "task.created",
            {"instance_id": instance.id, "task_guid": guid, "bpmn_id": task.bpmn_id},
        )


def _sync_subscriptions(instance: Instance, running: RunningInstance) -> None:
    waiting = running.waiting_events()
    if not waiting and not running.waiting_at_load:
        return
    db.session.execute(
        delete(Subscription).where(Subscription.instance_id == instance.id)
    )
    deadlines.sync_timers(instance.id, [e for e in waiting if e.kind == "timer"])
    for event in waiting:
        db.session.add(
            Subscription(
                instance_id=instance.id,
                task_guid=event.task_guid,
                bpmn_id=event.bpmn_id,
                kind=event.kind,
                name=event.name,
                correlation_sha256=event.correlation_hash(),
                correlations=event.correlations,
                due_at=event.due_at,
            )
        )


def list_instances(
    *,
    bpmn_process_id: str | None = None,
    status: str | None = None,
    business_key: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """Filter and page the instance table; no workflow is deserialized."""
    query = select(Instance)
    if bpmn_process_id:
        query = query.where(Instance.bpmn_process_id == bpmn_process_id)
    if status:
        query = query.where(Instance.status == status)
    if business_key:
        query = query.where(Instance.business_key == business_key)
    order = (Instance.created_at.desc(), Instance.id)
    return paginate(query, order, page, page_size)


def tasks_of(instance: Instance) -> list[HumanTask]:
    return list(
        db.session.scalars(
            select(HumanTask)
            .where(HumanTask.instance_id == instance.id)
            .order_by(HumanTask.created_at)
        )
    )


def history(instance: Instance) -> list[dict[str, Any]]:
    """What the instance has done, with who completed each human task."""
    completed_by = {
        task.task_guid: task.completed_by_id
        for task in tasks_of(instance)
        if task.completed_by_id is not None
    }
    entries = load(instance).history()
    for entry in entries:
        entry["completed_by_id"] = completed_by.get(entry["task_guid"])
    return entries


def diagram(instance: Instance) -> dict[str, Any]:
    """The BPMN of the instance's own version, and its elements by state."""
    states = load(instance).element_states()
    return {"xml": instance.definition_version.bpmn_xml, **states}


def retry(instance_id: str, actor_id: int | None) -> Instance:
    """Run an instance's failed tasks again."""
    instance = lock_instance(instance_id)
    if instance.status != ERROR:
        raise Conflict("Only an instance in error can be retried.", code="not-in-error")
    running = load(instance)
    audit.record("instance.retried", actor_id=actor_id, instance_id=instance.id)
    run_and_save(instance, running, actor_id, step=running.retry)
    return instance


def cancel(instance_id: str, actor_id: int | None) -> Instance:
    instance = lock_instance(instance_id)
    if instance.status in (COMPLETED, CANCELLED):
        raise Conflict(f"The instance is already {instance.status}.", code="finished")
    running = load(instance)
    running.cancel()
    save(instance, running, status=CANCELLED)
    audit.record("instance.cancelled", actor_id=actor_id, instance_id=instance.id)
    announce(instance, running, "cancelled")
    return instance
