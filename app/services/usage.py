"""Where registry fields are used: the forms binding them, the tasks showing them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select

from app.countries import third_country
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import DefinitionVersion, FormVersion, System
from app.services import registry


def latest_forms() -> list[FormVersion]:
    newest = select(func.max(FormVersion.id)).group_by(FormVersion.name)
    return list(
        db.session.scalars(
            select(FormVersion)
            .where(FormVersion.id.in_(newest))
            .order_by(FormVersion.name)
        )
    )


def latest_definition_versions() -> list[DefinitionVersion]:
    newest = (
        select(
            DefinitionVersion.definition_id,
            func.max(DefinitionVersion.number).label("number"),
        )
        .group_by(DefinitionVersion.definition_id)
        .subquery()
    )
    return list(
        db.session.scalars(
            select(DefinitionVersion).join(
                newest,
                and_(
                    DefinitionVersion.definition_id == newest.c.definition_id,
                    DefinitionVersion.number == newest.c.number,
                ),
            )
        )
    )


def _properties_binding(form: FormVersion, field_id: str) -> list[str]:
    return sorted(
        path for path, v in registry.bindings(form.schema).items() if v == field_id
    )


def uses_of(field_ids: list[str]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per field id: the latest forms that bind it, and the latest processes' tasks."""
    result: dict[str, dict[str, list[dict[str, Any]]]] = {
        i: {"forms": [], "tasks": []} for i in field_ids
    }
    for form in latest_forms():
        for field_id in field_ids:
            paths = _properties_binding(form, field_id)
            if paths:
                result[field_id]["forms"].append(_form_use(form, paths))
    for version, task, form in _tasks_with_forms():
        for field_id in field_ids:
            if _properties_binding(form, field_id):
                result[field_id]["tasks"].append(_task_use(version, task))
    return result


def _form_use(form: FormVersion, paths: list[str]) -> dict[str, Any]:
    return {"name": form.name, "version_id": form.id, "properties": paths}


def _tasks_with_forms() -> list[tuple[DefinitionVersion, dict[str, Any], FormVersion]]:
    """User tasks of each latest process version, with the form version it pinned."""
    versions = latest_definition_versions()
    pinned = {i for version in versions for i in version.forms.values()}
    forms = {
        form.id: form
        for form in db.session.scalars(
            select(FormVersion).where(FormVersion.id.in_(pinned))
        )
    }
    found = []
    for version in versions:
        for task in version.user_tasks:
            form = forms.get(version.forms.get(task.get("form") or "", -1))
            if form is not None:
                found.append((version, task, form))
    return found


def _task_use(version: DefinitionVersion, task: dict[str, Any]) -> dict[str, Any]:
    return {
        "process_id": version.definition.bpmn_process_id,
        "definition_version": version.number,
        "bpmn_id": task["bpmn_id"],
        "title": task.get("title"),
        "form": task.get("form"),
        "purpose": task.get("purpose"),
    }


def where_used(field_id: str) -> dict[str, Any]:
    """A field with its system, entity, recipients, forms and BPMN tasks."""
    row = registry.get_field(field_id)
    used = uses_of([field_id])[field_id]
    for task in used["tasks"]:
        task["purpose_allowed"] = task["purpose"] in row.purposes
    return {
        "field": row,
        "system": row.entity.system,
        "entity": row.entity,
        "recipients": describe_recipients(row.recipients),
        **used,
    }


def describe_recipients(recipients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Recipients as Art 15(1)(c) names them, third countries marked."""
    keys = [r["system"] for r in recipients if "system" in r]
    systems = {
        s.key: s for s in db.session.scalars(select(System).where(System.key.in_(keys)))
    }
    described = []
    for recipient in recipients:
        system = systems.get(recipient.get("system", ""))
        if system is not None:
            described.append(
                {
                    "system": system.key,
                    "name": system.name,
                    "role": system.role,
                    "country": system.country,
                    "agreement_status": system.agreement_status,
                }
            )
        else:
            described.append(
                {"name": recipient.get("name"), "country": recipient.get("country")}
            )
    for item in described:
        item["third_country"] = bool(item["country"]) and third_country(item["country"])
    return described


def refuse_if_bound(field_ids: list[str]) -> None:
    """409 when a deployed form or process binds one of the fields."""
    if not field_ids:
        return
    users = []
    for field_id, used in uses_of(field_ids).items():
        names = {form["name"] for form in used["forms"]}
        names |= {task["form"] for task in used["tasks"]}
        if names:
            users.append(f"{field_id} (forms {', '.join(sorted(names))})")
    if users:
        raise Conflict(
            "Deployed forms bind these fields: " + "; ".join(users) + ".",
            code="field-in-use",
        )


def form_fields(form_name: str) -> dict[str, Any]:
    """The registry fields the latest version of a form binds."""
    form = db.session.scalar(
        select(FormVersion)
        .where(FormVersion.name == form_name)
        .order_by(FormVersion.id.desc())
        .limit(1)
    )
    if form is None:
        raise NotFound(f"No form named '{form_name}' is deployed.")
    bound = registry.bindings(form.schema)
    known = registry.find_fields(v for v in bound.values() if isinstance(v, str))
    items = [
        {"property": path, "field_id": value, "field": known.get(value)}
        for path, value in sorted(bound.items())
    ]
    return {"form": form.name, "version_id": form.id, "items": items}
