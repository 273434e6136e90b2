"""Legal deadlines, internal targets and reminders; BPMN timers mirrored beside them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from app.calendar import LegalCalendar, Period, member_state, time_zone
from app.engine import RunningInstance, WaitingEvent
from app.errors import NotFound, Unprocessable
from app.extensions import db
from app.models import Deadline, DefinitionVersion, Instance, ProcessDefinition
from app.models.deadlines import (
    CANCELLED,
    ESCALATE,
    FIRED,
    KINDS,
    MET,
    PENDING,
    REMIND,
    WAKE,
)
from app.models.types import utcnow
from app.services import audit, context
from app.services.operators import as_operator
from app.services.paging import Page, paginate

# Derived deadlines follow their legal one: moved, met and cancelled with it.
TARGET, REMINDER = "target", "reminder"


class InvalidSetting(ValueError):
    """A calendar setting names no time zone, member state or subdivision."""


@functools.lru_cache(maxsize=8)
def _calendar(member_state: str, zone: str, subdivision: str | None) -> LegalCalendar:
    return LegalCalendar(
        member_state=member_state, timezone=zone, subdivision=subdivision
    )


def _calendar_of(config: Mapping[str, Any]) -> LegalCalendar:
    subdivision = (config.get("MEMBER_STATE_SUBDIVISION") or "").strip() or None
    return _calendar(config["MEMBER_STATE"], config["TIMEZONE"], subdivision)


def calendar() -> LegalCalendar:
    """The legal calendar of the configured member state, subdivision and zone."""
    return _calendar_of(current_app.config)


def check_settings(config: Mapping[str, Any]) -> None:
    """Refuse to start on a calendar setting that would fail the first deadline."""
    checks = (
        ("TIMEZONE", lambda: time_zone(config["TIMEZONE"])),
        ("MEMBER_STATE", lambda: member_state(config["MEMBER_STATE"])),
        ("MEMBER_STATE_SUBDIVISION", lambda: _calendar_of(config)),
    )
    for setting, check in checks:
        try:
            check()
        except ValueError as error:
            raise InvalidSetting(f"{setting}: {error}") from None


def _parse_time(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise _invalid(field, "is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise _invalid(field, "needs a time zone (an offset such as +01:00 or Z)")
    return moment


def _invalid(field: str, message: str) -> Unprocessable:
    return Unprocessable(
        f"The deadline's {field} {message}.",
        errors=[{"field": field, "message": message}],
    )


def _period(text: Any) -> Period:
    try:
        return Period.parse(str(text))
    except ValueError as exc:
        raise _invalid("period", str(exc)) from None


def set_deadline(
    instance_id: str,
    name: str,
    *,
    start: Any = None,
    period: Any = None,
    due_at: Any = None,
    kind: str = "legal",
    article: str | None = None,
    action: str = ESCALATE,
    role: str | None = "dpo",
    target_working_days_before: int | None = None,
    reminder_working_days_before: int | None = None,
    reminder_hours_before: int | None = None,
) -> Deadline:
    """Create or move a named deadline of an instance, with its target and reminder.

    A reminder is counted in working days before the deadline, or for a period in
    hours (such as Art 33(1)'s 72) in wall-clock hours before it.
    """
    if kind not in KINDS:
        raise _invalid("kind", f"must be one of {', '.join(KINDS)}")
    due, rule = _due(start, period, due_at, article)
    offsets = {
        "target_working_days_before": target_working_days_before,
        "reminder_working_days_before": reminder_working_days_before,
        "reminder_hours_before": reminder_hours_before,
    }
    rule["offsets"] = {key: int(n) for key, n in offsets.items() if n is not None}
    deadline = _upsert(instance_id, name, kind, action, role, due, rule)
    _derived(deadline, TARGET, target_working_days_before)
    _derived(deadline, REMINDER, reminder_working_days_before)
    _hours_before(deadline, reminder_hours_before)
    audit.record(
        "deadline.set",
        instance_id=instance_id,
        deadline=name,
        kind=kind,
        due_at=due.isoformat(),
        rule=rule.get("rule"),
    )
    return deadline


def _due(
    start: Any, period: Any, due_at: Any, article: str | None
) -> tuple[datetime, dict[str, Any]]:
    if due_at is not None:
        due = _parse_time(due_at, "due_at")
        return due, {"article": article, "rule": "fixed date"}
    if start is None or period is None:
        raise _invalid("period", "needs a start and a period, or a due_at")
    moment = _parse_time(start, "start")
    explained = calendar().explain(moment, _period(period))
    due = datetime.fromisoformat(explained["final_end"])
    return due, {"article": article, "period": str(period), **explained}


def _upsert(
    instance_id: str,
    name: str,
    kind: str,
    action: str,
    role: str | None,
    due: datetime,
    rule: dict[str, Any],
    keep_fired: bool = False,
) -> Deadline:
    deadline = _find(instance_id, name)
    if deadline is None or (keep_fired and deadline.state == FIRED):
        deadline = Deadline(instance_id=instance_id, name=name)
        db.session.add(deadline)
    deadline.kind, deadline.action, deadline.role = kind, action, role
    deadline.due_at, deadline.rule, deadline.state = due, rule, PENDING
    deadline.attempts, deadline.retry_at, deadline.closed_at = 0, None, None
    return deadline


def _derived(deadline: Deadline, suffix: str, days_before: int | None) -> None:
    if days_before is None:
        return
    due = calendar().subtract_working_days(deadline.due_at, int(days_before))
    kind = "internal_target" if suffix == TARGET else "reminder"
    rule = {
        "rule": f"{days_before} working days before {deadline.name}",
        "working_days_before": int(days_before),
        "of": deadline.name,
    }
    # A target or reminder that fired stays on record; its successor is new.
    _upsert(
        deadline.instance_id,
        f"{deadline.name}.{suffix}",
        kind,
        REMIND,
        deadline.role,
        due,
        rule,
        keep_fired=True,
    )


def _hours_before(deadline: Deadline, hours: int | None) -> None:
    if hours is None:
        return
    if int(hours) <= 0:
        raise _invalid("reminder_hours_before", "must be a positive number of hours")
    rule = {
        "rule": f"{int(hours)} hours before {deadline.name}",
        "hours_before": int(hours),
        "of": deadline.name,
        "article": deadline.rule.get("article"),
    }
    _upsert(
        deadline.instance_id,
        f"{deadline.name}.{REMINDER}",
        "reminder",
        REMIND,
        deadline.role,
        deadline.due_at - timedelta(hours=int(hours)),
        rule,
        keep_fired=True,
    )


def _find(instance_id: str, name: str) -> Deadline | None:
    """The named deadline's current row; fired targets and reminders are older."""
    return db.session.scalar(
        select(Deadline)
        .where(Deadline.instance_id == instance_id, Deadline.name == name)
        .order_by(Deadline.id.desc())
        .limit(1)
    )


def _family(instance_id: str, name: str) -> list[Deadline]:
    names = [name, f"{name}.{TARGET}", f"{name}.{REMINDER}"]
    return list(
        db.session.scalars(
            select(Deadline)
            .where(Deadline.instance_id == instance_id, Deadline.name.in_(names))
            .order_by(Deadline.id)
        )
    )


def get_deadline(instance_id: str, name: str) -> Deadline:
    deadline = _find(instance_id, name)
    if deadline is None:
        raise NotFound(f"The instance has no deadline named '{name}'.")
    return deadline


def extend(instance_id: str, name: str, by: Any, reason: str | None = None) -> Deadline:
    """Move a deadline later by a period counted from its current end.

    Its target and reminder are made again before the new end, whether or not
    they fired, and a waiting BPMN timer set to the old end moves with it.
    """
    deadline = get_deadline(instance_id, name)
    if deadline.state != PENDING:
        raise Unprocessable(
            f"The deadline '{name}' is {deadline.state} and cannot be extended.",
            errors=[{"field": "name", "message": f"is {deadline.state}"}],
        )
    was = deadline.due_at
    offsets = derived_offsets(instance_id, name)
    explained = calendar().explain(was, _period(by))
    history = [*deadline.rule.get("extensions", []), {"by": str(by), "reason": reason}]
    rule = {
        **deadline.rule,
        "offsets": offsets,
        "extensions": history,
        "extended_end": explained["final_end"],
    }
    moved = set_deadline(
        instance_id,
        name,
        due_at=explained["final_end"],
        kind=deadline.kind,
        article=deadline.rule.get("article"),
        action=deadline.action,
        role=deadline.role,
        **offsets,
    )
    moved.rule = rule
    _move_timers(instance_id, was, moved.due_at)
    return moved


def derived_offsets(instance_id: str, name: str) -> dict[str, int]:
    """How far before a deadline its target and reminder fall, fired or not."""
    deadline = _find(instance_id, name)
    if deadline is not None and "offsets" in deadline.rule:
        return dict(deadline.rule["offsets"])
    # Rows set before the legal rule kept its offsets carry them themselves.
    offsets = {}
    for suffix in (TARGET, REMINDER):
        derived = _find(instance_id, f"{name}.{suffix}")
        if derived is None:
            continue
        if "hours_before" in derived.rule:
            offsets[f"{suffix}_hours_before"] = derived.rule["hours_before"]
        else:
            days = derived.rule["working_days_before"]
            offsets[f"{suffix}_working_days_before"] = days
    return offsets


def _move_timers(instance_id: str, was: datetime, due_at: datetime) -> None:
    """Waiting BPMN timers set to the deadline's old end wait for its new one."""
    running = context.running_instance(instance_id)
    if running is not None:
        _move(running, instance_id, was, due_at)
        return
    if _timers_due(instance_id, was):
        raise RuntimeError(
            "A deadline a BPMN timer waits for moves inside a step of its instance "
            "(an operator, or instances.extend_deadline), so the timer moves too."
        )


def _move(
    running: RunningInstance, instance_id: str, was: datetime, due_at: datetime
) -> None:
    for event in running.waiting_events():
        if event.kind != "timer" or event.due_at != was:
            continue
        running.move_timer(event.task_guid, due_at)
        audit.record(
            "deadline.timer_moved",
            instance_id=instance_id,
            bpmn_id=event.bpmn_id,
            due_at=due_at.isoformat(),
        )


def _timers_due(instance_id: str, due_at: datetime) -> bool:
    found = db.session.scalar(
        select(Deadline.id)
        .where(
            Deadline.instance_id == instance_id,
            Deadline.kind == "bpmn_timer",
            Deadline.state == PENDING,
            Deadline.due_at == due_at,
        )
        .limit(1)
    )
    return found is not None


def close(instance_id: str, name: str, state: str) -> Deadline:
    """Mark a deadline met or cancelled; its target and reminder go with it.

    Closed after its end, even once it fired, it is closed late: the rule and
    the audit event keep by how much, and the instance carries on.
    """
    deadline = get_deadline(instance_id, name)
    if deadline.state in (MET, CANCELLED):
        return deadline
    now = utcnow()
    for row in _family(instance_id, name):
        if row is deadline or row.state == PENDING:
            row.state = state if row is deadline else CANCELLED
            row.closed_at = now
    late_seconds = max(int((now - deadline.due_at).total_seconds()), 0)
    if now > deadline.due_at:
        deadline.rule = {**deadline.rule, "late": True, "late_seconds": late_seconds}
    audit.record(
        f"deadline.{state}",
        instance_id=instance_id,
        deadline=name,
        late_seconds=late_seconds,
    )
    return deadline


def sync_timers(instance_id: str, timers: list[WaitingEvent]) -> None:
    """Mirror the instance's waiting BPMN timers as deadlines that wake it."""
    waiting = {event.task_guid: event for event in timers if event.due_at is not None}
    rows = db.session.scalars(
        select(Deadline).where(
            Deadline.instance_id == instance_id,
            Deadline.kind == "bpmn_timer",
            Deadline.state == PENDING,
        )
    ).all()
    known = set()
    now = utcnow()
    for row in rows:
        if row.task_guid in waiting:
            known.add(row.task_guid)
            row.due_at = waiting[row.task_guid].due_at
        else:
            _timer_ended(row, now)
    for guid, event in waiting.items():
        if guid not in known:
            db.session.add(_timer_deadline(instance_id, event))


def _timer_ended(row: Deadline, now: datetime) -> None:
    """A timer no longer waits: past its time it fired, before it, it was cancelled."""
    # Every engine step refreshes timers first, so a due timer fires before
    # anything else can end its wait.
    row.closed_at = now
    if row.due_at > now:
        row.state = CANCELLED
        return
    row.state = FIRED
    record_fired(row, now)


def record_fired(deadline: Deadline, now: datetime) -> None:
    """The audit event of a deadline that fired, and how late it was."""
    audit.record(
        "deadline.fired",
        instance_id=deadline.instance_id,
        deadline=deadline.name,
        kind=deadline.kind,
        does=deadline.action,
        late_seconds=int((now - deadline.due_at).total_seconds()),
    )


def _timer_deadline(instance_id: str, event: WaitingEvent) -> Deadline:
    return Deadline(
        instance_id=instance_id,
        name=f"timer:{event.bpmn_id}",
        kind="bpmn_timer",
        action=WAKE,
        task_guid=event.task_guid,
        due_at=event.due_at,
        rule={"rule": "BPMN timer", "bpmn_id": event.bpmn_id},
    )


def legal_end(instance_id: str) -> datetime | None:
    """When the instance must be done by law: its earliest live legal deadline."""
    return db.session.scalar(
        select(Deadline.due_at)
        .where(
            Deadline.instance_id == instance_id,
            Deadline.kind == "legal",
            Deadline.state != CANCELLED,
        )
        .order_by(Deadline.due_at)
        .limit(1)
    )


def for_instance(instance_id: str) -> list[Deadline]:
    return list(
        db.session.scalars(
            select(Deadline)
            .where(Deadline.instance_id == instance_id)
            .order_by(Deadline.due_at, Deadline.id)
        )
    )


def pending(
    *,
    kind: str | None = None,
    before: datetime | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """Every pending deadline across instances, soonest first, by the due index."""
    query = select(Deadline).where(Deadline.state == PENDING)
    if kind:
        query = query.where(Deadline.kind == kind)
    if before:
        query = query.where(Deadline.due_at <= before)
    return paginate(query, (Deadline.due_at, Deadline.id), page, page_size)


def instances_of(rows: list[Deadline]) -> dict[str, dict[str, Any]]:
    """For each instance the deadlines belong to: its process and business key."""
    ids = {row.instance_id for row in rows}
    found = db.session.execute(
        select(
            Instance.id,
            Instance.bpmn_process_id,
            Instance.business_key,
            ProcessDefinition.name,
        )
        .join(Instance.definition_version)
        .join(DefinitionVersion.definition)
        .where(Instance.id.in_(ids))
    )
    return {
        instance_id: {
            "process_id": process_id,
            "process": name,
            "business_key": business_key,
        }
        for instance_id, process_id, business_key, name in found
    }


def _as_reply(deadline: Deadline) -> dict[str, Any]:
    family = {d.name: d for d in _family(deadline.instance_id, deadline.name)}
    target = family.get(f"{deadline.name}.{TARGET}")
    reminder = family.get(f"{deadline.name}.{REMINDER}")
    return {
        "name": deadline.name,
        "due_at": deadline.due_at.isoformat(),
        "target_at": target.due_at.isoformat() if target else None,
        "reminder_at": reminder.due_at.isoformat() if reminder else None,
        "article": deadline.rule.get("article"),
    }


# Service-task operators: a BPMN timer reads the same `due_at` the table holds.


def set_operator(name: str, **params: Any) -> dict[str, Any]:
    """Set a named deadline of this instance; returns its due_at for a timer."""
    return _as_reply(set_deadline(context.current_instance_id(), name, **params))


def extend_operator(name: str, by: str, reason: str | None = None) -> dict[str, Any]:
    """Extend a named deadline of this instance by a period."""
    return _as_reply(extend(context.current_instance_id(), name, by, reason))


def met_operator(name: str) -> dict[str, Any]:
    """Mark a named deadline of this instance as met, late or not."""
    return _as_closed(close(context.current_instance_id(), name, MET))


def cancel_operator(name: str) -> dict[str, Any]:
    """Cancel a named deadline of this instance."""
    return _as_closed(close(context.current_instance_id(), name, CANCELLED))


def _as_closed(deadline: Deadline) -> dict[str, Any]:
    return {
        "name": deadline.name,
        "state": deadline.state,
        "late": bool(deadline.rule.get("late")),
    }


OPERATORS = {
    "deadlines.set": as_operator(set_operator),
    "deadlines.extend": as_operator(extend_operator),
    "deadlines.met": as_operator(met_operator),
    "deadlines.cancel": as_operator(cancel_operator),
}
