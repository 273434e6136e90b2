"""Task forms: JSON Schema documents, deployed as content-hashed versions."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from sqlalchemy import select

from app.errors import NotFound, Unprocessable
from app.extensions import db
from app.models import FormVersion
from app.services import audit, registry

FORM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,119}$")


def content_digest(schema: dict[str, Any]) -> str:
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_form(name: str, schema: Any) -> list[dict[str, Any]]:
    """What is wrong with a form document, as per-field errors (empty if fine)."""
    if not FORM_NAME.match(name):
        return [{"field": "name", "message": "lower-case letters, digits and _"}]
    if not isinstance(schema, dict):
        return [{"field": name, "message": "a form is a JSON object (a JSON Schema)"}]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.path) or name
        return [{"field": where, "message": f"not a valid JSON Schema: {exc.message}"}]
    if schema.get("type") != "object":
        return [
            {"field": f"{name}.type", "message": 'a task form has "type": "object"'}
        ]
    return [
        *registry.form_binding_errors(name, schema),
        *binding_rule_errors(name, schema),
    ]


def binding_rule_errors(name: str, schema: dict[str, Any]) -> list[dict[str, str]]:
    """Where a form binds registry fields in a way a task could not honour."""
    return [*_nested_binding_errors(name, schema), *_multi_system_errors(name, schema)]


def _nested_binding_errors(name: str, schema: dict[str, Any]) -> list[dict[str, str]]:
    """A task reads and writes only top-level bound properties (`properties.NAME`).

    A binding anywhere else would show and keep instance data as if unbound,
    outside the registry's purpose and restriction checks.
    """
    errors = []
    for location in _binding_locations(schema, ()):
        if len(location) == 2 and location[0] == "properties":
            continue
        where = ".".join(location) or "the form itself"
        errors.append(
            {
                "field": ".".join([name, *location, registry.BINDING]),
                "message": f"The form '{name}' binds a registry field at {where}; "
                "only a top-level property (properties.NAME) can be bound.",
            }
        )
    return errors


def _binding_locations(node: Any, location: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The schema locations of every object that carries a registry binding."""
    if isinstance(node, list):
        children = [(str(index), child) for index, child in enumerate(node)]
    elif isinstance(node, dict):
        children = [(str(key), child) for key, child in node.items()]
    else:
        return []
    found = [location] if isinstance(node, dict) and registry.BINDING in node else []
    for key, child in children:
        found.extend(_binding_locations(child, (*location, key)))
    return found


def _multi_system_errors(name: str, schema: dict[str, Any]) -> list[dict[str, str]]:
    """A completion writes each system in its own transaction, so one system per form.

    Writing two systems could leave the first written and the second not, with
    the completion and its audit event rolled back.
    """
    systems = sorted(
        {field_id.split(".", 1)[0] for field_id in _writable_bindings(schema).values()}
    )
    if len(systems) < 2:
        return []
    return [
        {
            "field": f"{name}.properties",
            "message": f"The form '{name}' lets a task write registry fields of "
            f"several systems ({', '.join(systems)}); a completion writes one system "
            "only. Mark the fields of all systems but one readOnly.",
        }
    ]


def _writable_bindings(schema: dict[str, Any]) -> dict[str, str]:
    """The top-level properties a submission writes to the registry, to field ids."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        str(prop): spec[registry.BINDING]
        for prop, spec in properties.items()
        if isinstance(spec, dict)
        and isinstance(spec.get(registry.BINDING), str)
        and not spec.get("readOnly", False)
    }


def deploy_form(name: str, schema: Any, actor_id: int | None = None) -> FormVersion:
    """Store a form version; the same content twice returns the first version."""
    errors = check_form(name, schema)
    if errors:
        raise Unprocessable(f"The form '{name}' cannot be deployed.", errors=errors)
    digest = content_digest(schema)
    existing = db.session.scalar(
        select(FormVersion).where(
            FormVersion.name == name, FormVersion.content_sha256 == digest
        )
    )
    if existing is not None:
        return existing
    version = FormVersion(
        name=name, content_sha256=digest, schema=schema, deployed_by_id=actor_id
    )
    db.session.add(version)
    db.session.flush()
    audit.record("form.deployed", actor_id=actor_id, form=name, form_version=version.id)
    return version


def latest_form(name: str) -> FormVersion | None:
    return db.session.scalar(
        select(FormVersion)
        .where(FormVersion.name == name)
        .order_by(FormVersion.id.desc())
        .limit(1)
    )


def get_form(name: str) -> FormVersion:
    version = latest_form(name)
    if version is None:
        raise NotFound(f"No form named '{name}' is deployed.")
    return version


def list_forms() -> list[FormVersion]:
    newest = (
        select(FormVersion.name, db.func.max(FormVersion.id).label("id"))
        .group_by(FormVersion.name)
        .subquery()
    )
    return list(
        db.session.scalars(
            select(FormVersion)
            .join(newest, FormVersion.id == newest.c.id)
            .order_by(FormVersion.name)
        )
    )


def read_forms_dir(directory: Path) -> dict[str, Any]:
    """Every forms/NAME.json file as {NAME: schema}."""
    forms = {}
    for path in sorted(directory.glob("*.json")):
        try:
            forms[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise Unprocessable(
                f"The form file {path.name} is not JSON (line {exc.lineno}).",
                errors=[{"field": path.stem, "message": exc.msg}],
            ) from None
    return forms


def validate_submission(form: FormVersion | None, data: Any) -> dict[str, Any]:
    """The submitted data if it satisfies the form; else 422 with per-field errors."""
    if not isinstance(data, dict):
        raise Unprocessable(
            "The task data must be a JSON object.",
            errors=[{"field": "data", "message": "must be an object"}],
        )
    if form is None:
        return data
    data = _without_read_only(form.schema, data)
    validator = Draft202012Validator(form.schema, format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise Unprocessable(
            "Some fields of the form are not valid.",
            errors=[_field_error(error) for error in errors],
        )
    return _with_defaults(form.schema, data)


def _with_defaults(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Absent fields that declare a `default` get it, so the process can read them."""
    properties = schema.get("properties", {})
    defaults = {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, dict)
        and "default" in spec
        and name not in data
        and not spec.get("readOnly", False)
    }
    return {**defaults, **data}


def _without_read_only(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A form's read-only fields show data; a submission cannot change them."""
    properties = schema.get("properties", {})
    return {
        name: value
        for name, value in data.items()
        if not properties.get(name, {}).get("readOnly", False)
    }


def _field_error(error: Any) -> dict[str, Any]:
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        path = f"{path}.{missing}" if path else missing
        return {"field": path, "message": "is required"}
    if error.validator == "additionalProperties":
        return {"field": path or None, "message": "has fields the form does not know"}
    # jsonschema messages quote the submitted value: describe the rule instead.
    return {"field": path or None, "message": _rule_message(error)}


RULES = {
    "type": "must be of type {}",
    "minLength": "must have at least {} characters",
    "maxLength": "must have at most {} characters",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "exclusiveMinimum": "must be more than {}",
    "exclusiveMaximum": "must be less than {}",
    "pattern": "does not have the expected format",
    "format": "must be a valid {}",
    "minItems": "must have at least {} items",
    "maxItems": "must have at most {} items",
    "const": "must be {}",
}


def _rule_message(error: Any) -> str:
    rule, expected = error.validator, error.validator_value
    if rule == "enum":
        return "must be one of: " + ", ".join(map(str, expected))
    template = RULES.get(rule)
    return template.format(expected) if template else f"does not satisfy '{rule}'"


def data_for_form(form: FormVersion | None, data: dict[str, Any]) -> dict[str, Any]:
    """Only the task data the form declares: a task never sees the rest."""
    if form is None:
        return {}
    fields = form.schema.get("properties", {})
    return {name: data[name] for name in fields if name in data}
