"""Where registry fields are used: the forms binding them, the tasks showing them."""

from __future__ import annotations

import ast
from typing import Any

from sqlalchemy import and_, func, select

from app.countries import third_country
from app.engine.parsing import read_xml
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import (
    ConsentNotice,
    DefinitionVersion,
    Dpia,
    Field,
    FormVersion,
    ProcessDefinition,
    System,
)
from app.services import registry
from app.services.registry_schemas import FIELD_ID


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
    forms = _pinned_forms(versions)
    found = []
    for version in versions:
        for task in version.user_tasks:
            form = _task_form(version, task, forms)
            if form is not None:
                found.append((version, task, form))
    return found


def _pinned_forms(versions: list[DefinitionVersion]) -> dict[int, FormVersion]:
    """The form versions these process versions pinned at deployment, by id."""
    pinned = {i for version in versions for i in version.forms.values()}
    return {
        form.id: form
        for form in db.session.scalars(
            select(FormVersion).where(FormVersion.id.in_(pinned))
        )
    }


def _task_form(
    version: DefinitionVersion, task: dict[str, Any], forms: dict[int, FormVersion]
) -> FormVersion | None:
    return forms.get(version.forms.get(task.get("form") or "", -1))


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


# --- a process: the personal fields its tasks show and its operators reach ------------

NAMESPACES = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "spiff": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
# What a registry operator reads or changes when its parameters name no fields.
OPERATOR_REACH = {
    "registry.locate": "every_field",
    "registry.export": "every_field",
    "registry.access_report": "every_field",
    "registry.portability": "portable_fields",
    "registry.restrict": "every_field",
}
# The parameter that narrows an operator to named fields.
FIELD_PARAMETERS = {"registry.restrict": "fields", "registry.erase": "plan"}


def process_fields(process_id: str, number: int | None = None) -> dict[str, Any]:
    """The registry fields one process version's user tasks and operators touch."""
    version = _definition_version(process_id, number)
    forms = _pinned_forms([version])
    return {
        "process_id": process_id,
        "name": version.definition.name,
        "definition_version": version.number,
        "user_tasks": [
            _task_fields(task, _task_form(version, task, forms))
            for task in version.user_tasks
        ],
        "service_tasks": _registry_operators(version),
    }


def _definition_version(process_id: str, number: int | None) -> DefinitionVersion:
    """A deployed version of the process: the one numbered, else the latest."""
    query = (
        select(DefinitionVersion)
        .join(DefinitionVersion.definition)
        .where(ProcessDefinition.bpmn_process_id == process_id)
        .order_by(DefinitionVersion.number.desc())
        .limit(1)
    )
    if number is not None:
        query = query.where(DefinitionVersion.number == number)
    version = db.session.scalar(query)
    if version is None:
        which = f"version {number} of " if number is not None else ""
        raise NotFound(f"No {which}process '{process_id}' is deployed.")
    return version


def _task_fields(task: dict[str, Any], form: FormVersion | None) -> dict[str, Any]:
    bound = registry.bindings(form.schema) if form is not None else {}
    bound = {path: value for path, value in bound.items() if isinstance(value, str)}
    known = registry.find_fields(bound.values())
    purpose = task.get("purpose")
    return {
        "bpmn_id": task["bpmn_id"],
        "title": task.get("title"),
        "lane": task.get("lane"),
        "role": task.get("role"),
        "form": task.get("form"),
        "form_version_id": form.id if form is not None else None,
        "purpose": purpose,
        "fields": [
            {
                "property": path,
                **_field_use(field_id, known.get(field_id)),
                "purpose_allowed": field_id in known
                and purpose in known[field_id].purposes,
            }
            for path, field_id in sorted(bound.items())
        ],
    }


def _field_use(field_id: str, row: Field | None) -> dict[str, Any]:
    """A field id as the registry knows it: its system, entity and category."""
    if row is None:
        return {"field_id": field_id, "known": False}
    return {
        "field_id": field_id,
        "known": True,
        "name": row.name,
        "system": row.entity.system.key,
        "entity": row.entity.key,
        "data_category": row.data_category,
        "special_category": row.special_category,
        "purposes": list(row.purposes),
    }


def _registry_operators(version: DefinitionVersion) -> list[dict[str, Any]]:
    """The service tasks of the stored BPMN that call a `registry.*` operator."""
    root = read_xml(version.bpmn_xml.encode("utf-8"))
    found = []
    for task in root.iterfind(".//bpmn:serviceTask", NAMESPACES):
        operator = task.find(".//spiff:serviceTaskOperator", NAMESPACES)
        name = operator.get("id", "") if operator is not None else ""
        if not name.startswith("registry."):
            continue
        parameters = {
            p.get("id", ""): p.get("value", "")
            for p in operator.iterfind(".//spiff:parameter", NAMESPACES)
        }
        found.append(
            {
                "bpmn_id": task.get("id"),
                "title": task.get("name"),
                **_operator_use(name, parameters),
            }
        )
    return found


def _operator_use(operator: str, parameters: dict[str, str]) -> dict[str, Any]:
    """What an operator reaches, as far as its parameter expressions say."""
    narrowing = parameters.get(FIELD_PARAMETERS.get(operator, ""))
    named: list[str] = []
    reach = OPERATOR_REACH.get(operator, "not_stated")
    if narrowing is not None:
        named, literal = _named_field_ids(narrowing)
        reach = "named_fields" if literal else "chosen_at_run_time"
    known = registry.find_fields(named)
    return {
        "operator": operator,
        "parameters": sorted(parameters),
        "reaches": reach,
        "fields": [_field_use(i, known.get(i)) for i in named],
        "systems": sorted({row.entity.system.key for row in known.values()}),
    }


def _named_field_ids(expression: str) -> tuple[list[str], bool]:
    """The field ids an expression spells out, and whether it is wholly literal."""
    try:
        nodes = list(ast.walk(ast.parse(expression, mode="eval")))
    except SyntaxError:
        return [], False
    named = {
        node.value
        for node in nodes
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and FIELD_ID.regex.match(node.value)
    }
    literal = not any(isinstance(node, ast.Name | ast.Call) for node in nodes)
    return sorted(named), literal


# --- vocabulary in use: what stops a purpose or category from being deleted -----------


def purpose_users(key: str) -> dict[str, list[str]]:
    """The fields naming a purpose and the latest processes' tasks that declare it."""
    tasks = [
        f"{version.definition.bpmn_process_id}.{task['bpmn_id']}"
        for version in latest_definition_versions()
        for task in version.user_tasks
        if task.get("purpose") == key
    ]
    fields = [row.field_id for row in registry.list_fields(purpose=key)]
    notices = db.session.scalars(
        select(ConsentNotice.version)
        .where(ConsentNotice.purpose == key)
        .order_by(ConsentNotice.version)
    ).all()
    dpias = db.session.scalars(
        select(Dpia.reference).where(Dpia.purpose == key).order_by(Dpia.reference)
    ).all()
    return {
        "fields": fields,
        "tasks": sorted(tasks),
        "consent_notices": [f"{key} v{version}" for version in notices],
        "dpias": list(dpias),
    }


def category_users(key: str) -> dict[str, list[str]]:
    """The fields and categories under a category; the forms and tasks binding it."""
    fields = [
        row.field_id
        for row in registry.list_fields(category=key)
        if row.data_category == key
    ]
    children = [c.key for c in registry.list_categories() if c.parent == key]
    used = uses_of(fields).values()
    forms = {form["name"] for use in used for form in use["forms"]}
    tasks = {f"{t['process_id']}.{t['bpmn_id']}" for use in used for t in use["tasks"]}
    return {
        "fields": fields,
        "categories": children,
        "forms": sorted(forms),
        "tasks": sorted(tasks),
    }


def refuse_if_used(kind: str, key: str, users: dict[str, list[str]]) -> None:
    """409 naming every user of a purpose or category that is to be deleted."""
    named = [f"{group} {', '.join(keys)}" for group, keys in users.items() if keys]
    if named:
        raise Conflict(
            f"The {kind} '{key}' is in use by " + "; ".join(named) + ".",
            code=f"{kind}-in-use",
            used_by={group: keys for group, keys in users.items() if keys},
        )
