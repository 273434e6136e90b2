"""Purpose-bound task forms: bound properties read from and written to the registry.

A task's instance data names its data subject under `subject`, as identities such
as `{"employee_number": "E1001"}`. A form property bound with `x-registry-field`
is filled with that subject's value only when the field's purposes include the
task's purpose; otherwise it is left out of the reply, never sent and hidden.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_

from app.errors import Conflict, Forbidden, NotFound, Unprocessable
from app.models import Field, FormVersion, HumanTask
from app.services import audit, connectors, forms, registry, restrictions, subjects

logger = logging.getLogger(__name__)

SUBJECT = "subject"


def subject_of(data: dict[str, Any]) -> dict[str, str] | None:
    """The identities the instance data names its subject by, if any."""
    identities = data.get(SUBJECT)
    if not isinstance(identities, dict) or not identities:
        return None
    return {str(key): str(value) for key, value in identities.items()}


def bound_properties(form: FormVersion | None) -> dict[str, str]:
    """The form's top-level properties bound to a registry field, to field ids."""
    if form is None:
        return {}
    found = registry.bindings(form.schema)
    return {
        path: field_id
        for path, field_id in found.items()
        if "." not in path and isinstance(field_id, str)
    }


def readable(task: HumanTask, field_ids: Collection[str]) -> dict[str, Field]:
    """The registry fields among those given that the task's purpose may use."""
    known = registry.find_fields(field_ids)
    return {
        field_id: row
        for field_id, row in known.items()
        if task.purpose is not None and task.purpose in row.purposes
    }


# --- reading ------------------------------------------------------------------------

NO_SUBJECT = (
    f"The task's instance names no data subject under '{SUBJECT}', so its registry "
    "fields are not shown."
)


@dataclass
class Shown:
    """A form's data for a person, and why registry values are left out of it."""

    data: dict[str, Any]
    notices: list[str] = field(default_factory=list)


def form_data(
    task: HumanTask, form: FormVersion | None, data: dict[str, Any]
) -> dict[str, Any]:
    """Unbound properties from the instance data, bound ones from the systems."""
    return shown_data(task, form, data).data


def shown_data(
    task: HumanTask, form: FormVersion | None, data: dict[str, Any]
) -> Shown:
    """The form's data; an unusable subject leaves the registry values out, noticed."""
    bound = bound_properties(form)
    shown = {
        name: value
        for name, value in forms.data_for_form(form, data).items()
        if name not in bound
    }
    allowed = readable(task, bound.values())
    if not allowed:
        return Shown(shown)
    identities = subject_of(data)
    if identities is None:
        return Shown(shown, [NO_SUBJECT])
    try:
        values = _values(identities, allowed)
    except Unprocessable as exc:
        if exc.code != "identity-unknown":
            raise
        return Shown(shown, [f"The registry fields are not shown: {exc.detail}"])
    for name, field_id in bound.items():
        if field_id in values:
            shown[name] = values[field_id]
    return Shown(shown)


def field_value(
    task: HumanTask, form: FormVersion | None, data: dict[str, Any], field_id: str
) -> Any:
    """One bound field's value for the task's subject; 403 outside its purpose.

    409 where the subject's row holds it restricted (Art 18), 404 without a row.
    """
    if field_id not in bound_properties(form).values() or not readable(
        task, [field_id]
    ):
        raise _forbidden(task, [field_id], "read")
    identities = subject_of(data)
    if identities is None:
        raise NotFound(
            "The task's instance names no data subject.", code="subject-missing"
        )
    fields = registry.find_fields([field_id])
    subject = _located(identities, fields)
    _refuse_restricted(fields, {match.entity.id: match for match in subject.matches})
    values = _read(subject, fields)
    if field_id not in values:
        raise NotFound(
            f"No row of the subject holds the field '{field_id}'.",
            code="subject-not-found",
        )
    return values[field_id]


def _values(identities: dict[str, str], fields: dict[str, Field]) -> dict[str, Any]:
    """Each field's value in the subject's first row of its entity."""
    return _read(_located(identities, fields), fields)


def _read(subject: Any, fields: dict[str, Field]) -> dict[str, Any]:
    # connectors.read leaves out whatever is restricted (Art 18) in these rows.
    copy = connectors.read(subject, list(fields))
    values = {}
    for entities in copy.systems.values():
        for rows in entities.values():
            if rows:
                values.update(rows[0])
    return subjects.plain(values)


def _located(identities: dict[str, str], fields: dict[str, Field]) -> Any:
    """The subject, in the entities of the fields given only."""
    subject = connectors.locate(identities)
    entities = {row.entity_id for row in fields.values()}
    subject.matches = [m for m in subject.matches if m.entity.id in entities]
    return subject


# --- writing ------------------------------------------------------------------------


def split_submission(
    task: HumanTask, form: FormVersion | None, submitted: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The submission as (instance data, values by field id); 403 outside purpose.

    Values of bound fields go to their systems only: personal data kept in the
    workflow's state would escape the registry's erasure and restriction.
    """
    bound = bound_properties(form)
    written = {bound[name]: value for name, value in submitted.items() if name in bound}
    forbidden = sorted(set(written) - set(readable(task, written)))
    if forbidden:
        raise _forbidden(task, forbidden, "write")
    _require_one_system(written)
    rest = {name: value for name, value in submitted.items() if name not in bound}
    return rest, written


def _require_one_system(written: dict[str, Any]) -> None:
    """Each system commits on its own: a second one could fail after the first.

    Forms are refused this at deployment; a form stored before that rule is
    refused here, before anything is written.
    """
    systems = sorted({field_id.split(".", 1)[0] for field_id in written})
    if len(systems) > 1:
        raise Conflict(
            "The task's form writes registry fields of several systems ("
            + ", ".join(systems)
            + "); a completion writes one system only, so nothing was changed.",
            code="form-spans-systems",
        )


def write(
    task: HumanTask, data: dict[str, Any], values: dict[str, Any], actor_id: int
) -> None:
    """Write bound values to the subject's rows, one transaction per system."""
    if not values:
        return
    identities = subject_of(data)
    if identities is None:
        raise Unprocessable(
            "The task's form writes registry fields, but its instance names no "
            f"data subject under '{SUBJECT}'.",
            code="subject-missing",
        )
    systems = write_values(identities, values)
    audit.record(
        "task.fields_written",
        actor_id=actor_id,
        instance_id=task.instance_id,
        task_guid=task.task_guid,
        purpose=task.purpose,
        identity_keys=sorted(identities),
        systems=systems,
        fields=sorted(values),
    )
    logger.info("task %s wrote %d registry fields", task.task_guid, len(values))


def write_values(identities: dict[str, str], values: dict[str, Any]) -> list[str]:
    """Write values by field id to the subject's rows; returns the systems changed.

    Refused (409) where the subject has no row for a field or a field is
    restricted; one transaction per system.
    """
    fields = registry.find_fields(values)
    subject = _located(identities, fields)
    by_entity = {match.entity.id: match for match in subject.matches}
    _require_rows(fields, by_entity)
    _refuse_restricted(fields, by_entity)
    by_system: dict[str, list[tuple[connectors.Match, list[Field]]]] = {}
    for entity_id, match in by_entity.items():
        rows = [row for row in fields.values() if row.entity_id == entity_id]
        if rows:
            by_system.setdefault(match.system.key, []).append((match, rows))
    for updates in by_system.values():
        _write_system(updates, values)
    return sorted(by_system)


def _refuse_restricted(fields: dict[str, Field], by_entity: dict[int, Any]) -> None:
    """Restricted data may only be stored (Art 18(2)): a task cannot change it."""
    held: set[str] = set()
    for match in by_entity.values():
        for row_key in match.row_keys:
            held |= restrictions.restricted_fields(
                match.system.key, match.entity.key, row_key
            )
    blocked = sorted(held.intersection(fields))
    if blocked:
        raise Conflict(
            "Restricted under Art 18, so it may only be stored: "
            + ", ".join(blocked)
            + ".",
            code="field-restricted",
        )


def _require_rows(fields: dict[str, Field], by_entity: dict[int, Any]) -> None:
    missing = sorted(i for i, row in fields.items() if row.entity_id not in by_entity)
    if missing:
        raise Conflict(
            "The task's subject has no row holding " + ", ".join(missing) + ".",
            code="subject-not-found",
        )


def _write_system(
    updates: list[tuple[connectors.Match, list[Field]]], values: dict[str, Any]
) -> None:
    system = updates[0][0].system
    with connectors.connect(system) as connection, connection.begin():
        for match, rows in updates:
            table = connectors.reflect(connection, system, match.entity)
            changes = {
                connectors.column_name(row): values[row.field_id] for row in rows
            }
            for name in changes:
                connectors.column(table, system, name)
            keys = list(table.primary_key.columns)
            by_key = or_(
                *(
                    and_(*(key == row_key[key.name] for key in keys))
                    for row_key in match.row_keys
                )
            )
            connection.execute(table.update().where(by_key).values(**changes))


def _forbidden(task: HumanTask, field_ids: list[str], action: str) -> Forbidden:
    return Forbidden(
        f"The task's purpose '{task.purpose}' may not {action} "
        + ", ".join(field_ids)
        + ".",
        code="purpose-forbidden",
        audit_denial={
            "task_guid": task.task_guid,
            "instance_id": task.instance_id,
            "purpose": task.purpose,
            "fields": field_ids,
        },
    )
