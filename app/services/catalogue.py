"""The registry as one YAML catalogue: loaded whole or not at all, and written out."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import BadRequest, Conflict, Unprocessable
from app.extensions import db
from app.models import Category, Entity, Field, Purpose, System
from app.services import audit, registry, registry_changes, usage
from app.services.registry_changes import CREATED, UNCHANGED, UPDATED
from app.services.registry_schemas import (
    CATEGORY_KEY,
    KEY,
    NEW_PURPOSE_KEY,
    CategorySchema,
    EntitySchema,
    FieldSchema,
    PurposeSchema,
    SystemSchema,
    field_messages,
)

logger = logging.getLogger(__name__)

DEMO = Path(__file__).parent.parent / "registry" / "demo_catalogue.yaml"
SECTIONS = ("purposes", "categories", "systems")
# Aliases let a small document expand to a huge one; past this many nodes it is
# refused before any schema walks it.
MAX_NODES = 100_000
KINDS = ("purposes", "categories", "systems", "entities", "fields")
REMOVED = "removed"
STATES = (CREATED, UPDATED, UNCHANGED, REMOVED)


@dataclass
class Catalogue:
    """A validated catalogue: purposes, categories, systems with entities, fields."""

    purposes: dict[str, dict[str, Any]] = field(default_factory=dict)
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class LoadReport:
    """What a load did, per kind: the keys created, updated, unchanged, removed."""

    replace: bool
    changes: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {kind: defaultdict(list) for kind in KINDS}
    )

    def note(self, kind: str, state: str, key: str) -> None:
        self.changes[kind][state].append(key)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            kind: {state: len(self.changes[kind].get(state, [])) for state in STATES}
            for kind in KINDS
        }

    @property
    def changed(self) -> bool:
        return any(
            self.changes[kind].get(state)
            for kind in KINDS
            for state in STATES
            if state != UNCHANGED
        )


def load_catalogue(
    source: str | os.PathLike[str],
    *,
    replace: bool = False,
    actor_id: int | None = None,
) -> LoadReport:
    """Load YAML text or a file; upsert by keys; `replace` also removes the rest."""
    text = source if isinstance(source, str) else Path(source).read_text("utf-8")
    catalogue = validate(parse_yaml(text), replace)
    try:
        report = _apply(catalogue, replace)
    except IntegrityError:
        # Another load or change added the same keys in the meantime.
        raise Conflict(
            "The registry changed while the catalogue was loading; load it again.",
            code="registry-changed",
        ) from None
    if report.changed:
        _audit(report, actor_id)
    logger.info("registry catalogue loaded: %s", report.counts())
    return report


def parse_yaml(text: str) -> Any:
    """The YAML document as plain data; tags that build objects are refused."""
    try:
        document = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        raise BadRequest(
            f"The catalogue{_line(exc)} uses a YAML tag that is not allowed: "
            "only mappings, lists, strings, numbers, booleans and dates are read.",
            code="yaml-tag-refused",
        ) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "unreadable"
        raise BadRequest(
            f"The catalogue is not valid YAML{_line(exc)}: {problem}.",
            code="malformed-yaml",
        ) from None
    except RecursionError:
        raise BadRequest(
            "The catalogue is nested too deeply.", code="malformed-yaml"
        ) from None
    if _exceeds(document, MAX_NODES):
        raise BadRequest(
            f"The catalogue expands to more than {MAX_NODES} values.",
            code="catalogue-too-large",
        )
    return document


def _line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


def _exceeds(document: Any, limit: int) -> bool:
    """Whether the document, aliases expanded, holds more than `limit` nodes."""
    stack, seen = [document], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# --- validation: every problem at once, each named by its YAML path --------------


class _Reader:
    def __init__(self, replace: bool) -> None:
        self.errors: list[dict[str, str]] = []
        self.known = registry.Known() if replace else registry.Known.from_database()

    def fail(self, path: str, message: str) -> None:
        self.errors.append({"field": path, "message": message})

    def mapping(self, node: Any, path: str) -> dict[str, Any]:
        """A mapping keyed by valid keys; anything else is an error, read as empty."""
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.fail(path, "Must be a mapping of keys to entries.")
            return {}
        valid = {}
        for key, value in node.items():
            if not isinstance(key, str):
                self.fail(f"{path}.{key}", "A key is a string.")
            elif self._key_ok(key, f"{path}.{key}"):
                valid[key] = value
        return valid

    def _key_ok(self, key: str, path: str) -> bool:
        section = path.split(".", 1)[0]
        rules = {"purposes": NEW_PURPOSE_KEY, "categories": CATEGORY_KEY}
        try:
            for rule in rules.get(section, [KEY]):
                rule(key)
        except ValidationError as exc:
            self.fail(path, f"Not a valid key: {exc.messages[0]}")
            return False
        return True

    def load(
        self, schema: Schema, node: Any, path: str, nested: str | None = None
    ) -> tuple[dict[str, Any] | None, Any]:
        """The node through the schema, and its nested section (popped before)."""
        if not isinstance(node, dict):
            self.fail(path, "Must be a mapping.")
            return None, None
        node = dict(node)
        inner = node.pop(nested, None) if nested else None
        try:
            return schema.load(node), inner
        except ValidationError as exc:
            self.errors.extend(field_messages(exc, path))
            return None, inner


def validate(document: Any, replace: bool = False) -> Catalogue:
    """The catalogue checked whole; any problem is a 422 listing all of them."""
    if not isinstance(document, dict):
        raise Unprocessable(
            "A catalogue is a YAML mapping with the sections "
            "purposes, categories and systems.",
            code="catalogue-invalid",
            errors=[{"field": "", "message": "Must be a mapping."}],
        )
    reader = _Reader(replace)
    for key in document:
        if key not in SECTIONS:
            reader.fail(str(key), f"Unknown section; use {', '.join(SECTIONS)}.")
    catalogue = Catalogue(
        purposes=_purposes(reader, document.get("purposes")),
        categories=_categories(reader, document.get("categories")),
        systems=_systems(reader, document.get("systems")),
    )
    _check_fields(reader, catalogue)
    if reader.errors:
        count = len(reader.errors)
        raise Unprocessable(
            f"The catalogue has {count} problem{'s' if count > 1 else ''}; "
            f"nothing was loaded. First: {reader.errors[0]['field']}: "
            f"{reader.errors[0]['message']}",
            code="catalogue-invalid",
            errors=reader.errors,
        )
    return catalogue


def _purposes(reader: _Reader, node: Any) -> dict[str, dict[str, Any]]:
    purposes = {}
    for key, entry in reader.mapping(node, "purposes").items():
        path = f"purposes.{key}"
        for error in registry.check_purpose_key(key):
            reader.fail(path, error["message"])
        data, _ = reader.load(PurposeSchema(), entry, path)
        reader.known.purposes[key] = data["legal_basis"] if data else None
        if data is not None:
            purposes[key] = data
    return purposes


def _categories(reader: _Reader, node: Any) -> dict[str, dict[str, Any]]:
    categories = {}
    for key, entry in reader.mapping(node, "categories").items():
        path = f"categories.{key}"
        for error in registry.check_category_key(key):
            reader.fail(path, error["message"])
        data, _ = reader.load(CategorySchema(), entry, path)
        reader.known.categories[key] = bool(data and data["special_category"])
        if data is not None:
            categories[key] = data
    # Parents are checked once every category of the file is known.
    for key, data in categories.items():
        for error in registry.check_category(key, data, reader.known):
            reader.fail(f"categories.{key}.{error['field']}", error["message"])
    return categories


def _systems(reader: _Reader, node: Any) -> dict[str, dict[str, Any]]:
    systems = {}
    for key, entry in reader.mapping(node, "systems").items():
        path = f"systems.{key}"
        data, entities = reader.load(SystemSchema(), entry, path, nested="entities")
        reader.known.systems[key] = data["role"] if data else "unknown"
        if data is not None:
            data["entities"] = _entities(reader, entities, f"{path}.entities")
            systems[key] = data
    return systems


def _entities(reader: _Reader, node: Any, path: str) -> dict[str, dict[str, Any]]:
    entities = {}
    for key, entry in reader.mapping(node, path).items():
        entity_path = f"{path}.{key}"
        data, fields = reader.load(EntitySchema(), entry, entity_path, nested="fields")
        if data is None:
            continue
        for error in registry.check_entity(data):
            reader.fail(f"{entity_path}.{error['field']}", error["message"])
        data["fields"] = {}
        for field_key, field_entry in reader.mapping(
            fields, f"{entity_path}.fields"
        ).items():
            field_path = f"{entity_path}.fields.{field_key}"
            loaded, _ = reader.load(FieldSchema(), field_entry, field_path)
            if loaded is not None:
                data["fields"][field_key] = loaded
        entities[key] = data
    return entities


def _check_fields(reader: _Reader, catalogue: Catalogue) -> None:
    """The vocabulary rules, once every purpose and system of the file is known."""
    for system_key, system in catalogue.systems.items():
        for entity_key, entity in system["entities"].items():
            for key, data in entity["fields"].items():
                path = f"systems.{system_key}.entities.{entity_key}.fields.{key}"
                checked, errors = registry.check_field(data, reader.known)
                for error in errors:
                    reader.fail(f"{path}.{error['field']}", error["message"])
                entity["fields"][key] = checked


# --- applying: upsert by keys, in the caller's transaction ------------------------


def _apply(catalogue: Catalogue, replace: bool) -> LoadReport:
    report = LoadReport(replace)
    purposes = {p.key: p for p in db.session.scalars(select(Purpose))}
    for key, data in catalogue.purposes.items():
        row = purposes.get(key) or Purpose(key=key)
        report.note("purposes", registry_changes.assign(row, data), key)
        db.session.add(row)
    categories = {c.key: c for c in db.session.scalars(select(Category))}
    for key, data in catalogue.categories.items():
        row = categories.get(key) or Category(key=key)
        report.note("categories", registry_changes.assign(row, data), key)
        db.session.add(row)
    systems = {s.key: s for s in db.session.scalars(select(System))}
    for key, data in catalogue.systems.items():
        row = systems.get(key) or System(key=key)
        values = registry_changes.system_values(data)
        report.note("systems", registry_changes.assign(row, values), key)
        db.session.add(row)
        _apply_entities(row, data["entities"], report)
    if replace:
        _remove_the_rest(catalogue, purposes, categories, systems, report)
    db.session.flush()
    return report


def _apply_entities(
    system: System, entities: dict[str, dict[str, Any]], report: LoadReport
) -> None:
    existing = {entity.key: entity for entity in system.entities}
    for key, data in entities.items():
        entity = existing.get(key)
        if entity is None:
            entity = Entity(key=key)
            system.entities.append(entity)
        values = {name: value for name, value in data.items() if name != "fields"}
        report.note(
            "entities", registry_changes.assign(entity, values), f"{system.key}.{key}"
        )
        _apply_fields(system, entity, data["fields"], report)


def _apply_fields(
    system: System, entity: Entity, fields: dict[str, Any], report: LoadReport
) -> None:
    existing = {row.key: row for row in entity.fields}
    for key, data in fields.items():
        row = existing.get(key)
        if row is None:
            row = Field(key=key)
            entity.fields.append(row)
        state = registry_changes.assign(row, registry_changes.field_values(data))
        report.note("fields", state, f"{system.key}.{entity.key}.{key}")


def _remove_the_rest(
    catalogue: Catalogue,
    purposes: dict[str, Purpose],
    categories: dict[str, Category],
    systems: dict[str, System],
    report: LoadReport,
) -> None:
    """With replace, what the file no longer lists goes, unless a form binds it."""
    doomed_fields: list[tuple[Entity, Field]] = []
    doomed_entities: list[tuple[System, Entity]] = []
    for key, system in systems.items():
        listed = catalogue.systems.get(key, {}).get("entities")
        for entity in system.entities:
            if listed is None or entity.key not in listed:
                doomed_entities.append((system, entity))
                doomed_fields.extend((entity, row) for row in entity.fields)
                continue
            doomed_fields.extend(
                (entity, row)
                for row in entity.fields
                if row.key not in listed[entity.key]["fields"]
            )
    usage.refuse_if_bound([row.field_id for _, row in doomed_fields])
    registry_changes.refuse_if_ledgered(
        [row.field_id for _, row in doomed_fields]
        + [f"{system.key}.{entity.key}" for system, entity in doomed_entities]
        + [key for key in systems if key not in catalogue.systems]
    )
    for entity, row in doomed_fields:
        report.note("fields", REMOVED, row.field_id)
        entity.fields.remove(row)
    for system, entity in doomed_entities:
        report.note("entities", REMOVED, f"{system.key}.{entity.key}")
        system.entities.remove(entity)
    for key, system in systems.items():
        if key not in catalogue.systems:
            report.note("systems", REMOVED, key)
            db.session.delete(system)
    for key, purpose in purposes.items():
        if key not in catalogue.purposes:
            report.note("purposes", REMOVED, key)
            db.session.delete(purpose)
    for key, category in categories.items():
        if key not in catalogue.categories:
            report.note("categories", REMOVED, key)
            db.session.delete(category)


def _audit(report: LoadReport, actor_id: int | None) -> None:
    changed = {
        f"{kind}_{state}": sorted(keys)
        for kind in KINDS
        for state, keys in report.changes[kind].items()
        if keys and state != UNCHANGED
    }
    audit.record(
        "registry.catalogue_loaded",
        actor_id=actor_id,
        replace=report.replace,
        **changed,
    )


# --- writing the catalogue out ----------------------------------------------------


def export_catalogue() -> dict[str, Any]:
    """The whole registry in the shape load_catalogue reads."""
    return {
        "purposes": {
            p.key: {
                "name": p.name,
                "description": p.description,
                "legal_basis": p.legal_basis,
                "legitimate_interest": p.legitimate_interest,
            }
            for p in registry.list_purposes()
        },
        "categories": {
            c.key: {
                "name": c.name,
                "description": c.description,
                "special_category": c.special_category,
                "art9_basis_note": c.art9_basis_note,
                "parent": c.parent,
            }
            for c in registry.list_categories()
        },
        "systems": {s.key: _system_document(s) for s in registry.list_systems()},
    }


def _system_document(system: System) -> dict[str, Any]:
    return {
        "name": system.name,
        "owner": system.owner,
        "location": system.location,
        "country": system.country,
        "role": system.role,
        "processor_agreement": {
            "status": system.agreement_status,
            "signed_on": system.agreement_signed_on,
            "reference": system.agreement_reference,
            "terms": dict(system.agreement_terms or {}),
            "sub_processors": list(system.sub_processors or []),
        },
        "description": system.description,
        "security_measures": system.security_measures,
        "transfer_safeguard": system.transfer_safeguard,
        "transfer_note": system.transfer_note,
        "connection": system.connection,
        "retention_review": system.retention_review,
        "entities": {
            entity.key: {
                "name": entity.name,
                "subject_category": entity.subject_category,
                "subject_key": entity.subject_key,
                "table": entity.table,
                "fields": {
                    row.key: registry_changes.field_values(_as_dict(row))
                    for row in entity.fields
                },
            }
            for entity in system.entities
        },
    }


def _as_dict(row: Field) -> dict[str, Any]:
    return {name: getattr(row, name) for name in registry_changes.FIELD_ATTRIBUTES}


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=88)
