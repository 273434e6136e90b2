"""Changes to the registry one entry at a time: systems, fields, vocabulary, audited."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from app.errors import Conflict, Unprocessable
from app.extensions import db
from app.models import Category, Entity, ErasureEntry, Field, Purpose, System
from app.models.registry import AGREEMENT_TERMS as TERMS
from app.models.types import utcnow
from app.services import audit, registry, usage

logger = logging.getLogger(__name__)

CREATED, UPDATED, UNCHANGED = "created", "updated", "unchanged"


def assign(row: Any, values: dict[str, Any]) -> str:
    """Set the attributes that differ; say whether the row was new or changed."""
    created = row.id is None
    changed = False
    for name, value in values.items():
        if created or getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if created:
        return CREATED
    if changed:
        row.updated_at = utcnow()
        return UPDATED
    return UNCHANGED


SYSTEM_ATTRIBUTES = ("name", "owner", "location", "country", "role", "description")


def system_values(data: dict[str, Any]) -> dict[str, Any]:
    agreement = data["processor_agreement"]
    values = {name: data[name] for name in SYSTEM_ATTRIBUTES}
    values["connection"] = data.get("connection")
    values["security_measures"] = data.get("security_measures") or ""
    values["transfer_safeguard"] = data.get("transfer_safeguard")
    values["transfer_note"] = data.get("transfer_note")
    values["retention_review"] = data.get("retention_review", True)
    values["agreement_status"] = agreement["status"]
    values["agreement_signed_on"] = agreement.get("signed_on")
    values["agreement_reference"] = agreement.get("reference")
    terms = agreement.get("terms") or {}
    values["agreement_terms"] = {term: bool(terms.get(term)) for term in TERMS}
    values["sub_processors"] = list(agreement.get("sub_processors") or [])
    return values


FIELD_ATTRIBUTES = (
    "name",
    "data_category",
    "purposes",
    "legal_basis",
    "art9_condition",
    "special_category",
    "origin",
    "retention",
    "recipients",
    "automated_decision",
    "automated_decision_logic",
    "column",
)


def field_values(data: dict[str, Any]) -> dict[str, Any]:
    return {name: data.get(name) for name in FIELD_ATTRIBUTES}


def sync_entities(system: System, entities: dict[str, dict[str, Any]]) -> None:
    """Make the system's entities those listed: create, update, remove."""
    existing = {entity.key: entity for entity in system.entities}
    for key, values in entities.items():
        entity = existing.get(key)
        if entity is None:
            entity = Entity(key=key)
            system.entities.append(entity)
        assign(entity, values)
    for key, entity in existing.items():
        if key not in entities:
            system.entities.remove(entity)


# --- systems --------------------------------------------------------------------------


def create_system(data: dict[str, Any], actor_id: int | None) -> System:
    """A new system with its entities; a key already taken is a 409."""
    key = data["key"]
    if db.session.scalar(select(System.id).where(System.key == key)) is not None:
        raise Conflict(f"The system '{key}' exists already.", code="system-exists")
    system = System(key=key)
    assign(system, system_values(data))
    sync_entities(system, _entities(data))
    db.session.add(system)
    db.session.flush()
    _audit_system("registry.system_created", system, actor_id)
    return system


def replace_system(key: str, data: dict[str, Any], actor_id: int | None) -> System:
    """Replace a system's attributes and its list of entities."""
    system = registry.get_system(key)
    entities = _entities(data)
    dropped = [e.key for e in system.entities if e.key not in entities and e.fields]
    refuse_if_ledgered(
        [f"{key}.{e.key}" for e in system.entities if e.key not in entities]
    )
    if dropped:
        raise Conflict(
            f"The entities {', '.join(dropped)} of '{key}' still have fields; "
            "delete the fields first.",
            code="entity-has-fields",
        )
    if data["role"] == "internal":
        _refuse_if_recipient(system)
    assign(system, system_values(data))
    sync_entities(system, entities)
    db.session.flush()
    _audit_system("registry.system_updated", system, actor_id)
    return system


def _entities(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The listed entities by key, once each is checked."""
    entities = data.get("entities", [])
    errors = [
        registry.field_error(f"entities.{index}.{error['field']}", error["message"])
        for index, entity in enumerate(entities)
        for error in registry.check_entity(entity)
    ]
    if errors:
        raise Unprocessable(
            "The system's entities break registry rules: " + errors[0]["message"],
            errors=errors,
        )
    return {
        entity["key"]: {name: value for name, value in entity.items() if name != "key"}
        for entity in entities
    }


def delete_system(key: str, actor_id: int | None) -> None:
    """Remove a system with its entities and fields, unless something uses them."""
    system = registry.get_system(key)
    ids = [f.field_id for entity in system.entities for f in entity.fields]
    usage.refuse_if_bound(ids)
    refuse_if_ledgered([key])
    _refuse_if_recipient(system)
    _audit_system("registry.system_deleted", system, actor_id)
    db.session.delete(system)
    db.session.flush()


def refuse_if_ledgered(names: list[str]) -> None:
    """409 when the erasure ledger names a system, entity or field about to go.

    Names are `system`, `system.entity` or a field id. The ledger's entries must
    stay explainable by the catalogue that made them (Art 5(2) accountability).
    """
    systems = {name.split(".")[0] for name in names}
    if not systems:
        return
    query = select(
        ErasureEntry.system_key, ErasureEntry.entity_key, ErasureEntry.field_ids
    ).where(ErasureEntry.system_key.in_(systems))
    ledgered: set[str] = set()
    for system_key, entity_key, field_ids in db.session.execute(query):
        ledgered |= {system_key, f"{system_key}.{entity_key}", *field_ids}
    named = sorted(set(names) & ledgered)
    if named:
        raise Conflict(
            f"The erasure ledger refers to {', '.join(named)}; a replay after a "
            "restore needs it, so it stays.",
            code="in-erasure-ledger",
        )


def _refuse_if_recipient(system: System) -> None:
    """409 when other systems' fields disclose data to this one."""
    naming = [
        row.field_id
        for row in db.session.scalars(select(Field))
        if row.entity.system_id != system.id
        and any(r.get("system") == system.key for r in row.recipients)
    ]
    if naming:
        raise Conflict(
            f"The system '{system.key}' is a recipient of {', '.join(naming)}.",
            code="system-in-use",
        )


def _audit_system(action: str, system: System, actor_id: int | None) -> None:
    audit.record(
        action,
        actor_id=actor_id,
        system=system.key,
        entities=[entity.key for entity in system.entities],
    )
    logger.info("%s %s", action, system.key)


# --- fields ---------------------------------------------------------------------------


def _entity_for(field_id: str) -> tuple[Entity, str]:
    system_key, entity_key, key = registry.split_field_id(field_id)
    entity = db.session.scalar(
        select(Entity)
        .join(Entity.system)
        .where(System.key == system_key, Entity.key == entity_key)
    )
    if entity is None:
        raise Unprocessable(
            f"The registry has no entity '{system_key}.{entity_key}' for the field.",
            errors=[
                registry.field_error("id", f"No entity '{system_key}.{entity_key}'.")
            ],
        )
    return entity, key


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    data, errors = registry.check_field(data, registry.Known.from_database())
    if errors:
        raise Unprocessable(
            "The field breaks registry rules: " + errors[0]["message"], errors=errors
        )
    return data


def create_field(data: dict[str, Any], actor_id: int | None) -> Field:
    """A new field under an existing entity, checked against the vocabulary."""
    field_id = data["id"]
    entity, key = _entity_for(field_id)
    if any(existing.key == key for existing in entity.fields):
        raise Conflict(f"The field '{field_id}' exists already.", code="field-exists")
    row = Field(key=key)
    assign(row, field_values(_checked(data)))
    entity.fields.append(row)
    db.session.flush()
    _audit_field("registry.field_created", row, actor_id)
    return row


def replace_field(field_id: str, data: dict[str, Any], actor_id: int | None) -> Field:
    row = registry.get_field(field_id)
    assign(row, field_values(_checked(data)))
    db.session.flush()
    _audit_field("registry.field_updated", row, actor_id)
    return row


def delete_field(field_id: str, actor_id: int | None) -> None:
    """Remove a field no deployed form binds."""
    row = registry.get_field(field_id)
    usage.refuse_if_bound([field_id])
    refuse_if_ledgered([field_id])
    _audit_field("registry.field_deleted", row, actor_id)
    db.session.delete(row)
    db.session.flush()


def _audit_field(action: str, row: Field, actor_id: int | None) -> None:
    audit.record(action, actor_id=actor_id, field=row.field_id)
    logger.info("%s %s", action, row.field_id)


# --- purposes -------------------------------------------------------------------------


def create_purpose(data: dict[str, Any], actor_id: int | None) -> Purpose:
    key = data["key"]
    errors = registry.check_purpose_key(key)
    if errors:
        raise Unprocessable(errors[0]["message"], errors=errors)
    if db.session.scalar(select(Purpose.id).where(Purpose.key == key)) is not None:
        raise Conflict(f"The purpose '{key}' exists already.", code="purpose-exists")
    purpose = Purpose(key=key)
    names = ("name", "description", "legal_basis", "legitimate_interest")
    assign(purpose, {n: data[n] for n in names})
    db.session.add(purpose)
    db.session.flush()
    audit.record("registry.purpose_created", actor_id=actor_id, purpose=key)
    return purpose


PURPOSE_ATTRIBUTES = ("name", "description", "legal_basis", "legitimate_interest")


def replace_purpose(key: str, data: dict[str, Any], actor_id: int | None) -> Purpose:
    """Replace what the registry records about one of the organisation's purposes."""
    purpose = registry.get_purpose(key)
    assign(purpose, {name: data[name] for name in PURPOSE_ATTRIBUTES})
    db.session.flush()
    audit.record("registry.purpose_updated", actor_id=actor_id, purpose=key)
    logger.info("registry.purpose_updated %s", key)
    return purpose


def delete_purpose(key: str, actor_id: int | None) -> None:
    """Remove a purpose that no field names and no deployed task declares."""
    purpose = registry.get_purpose(key)
    usage.refuse_if_used("purpose", key, usage.purpose_users(key))
    audit.record("registry.purpose_deleted", actor_id=actor_id, purpose=key)
    logger.info("registry.purpose_deleted %s", key)
    db.session.delete(purpose)
    db.session.flush()


# --- categories -----------------------------------------------------------------------

CATEGORY_ATTRIBUTES = (
    "name",
    "description",
    "special_category",
    "art9_basis_note",
    "parent",
)


def create_category(data: dict[str, Any], actor_id: int | None) -> Category:
    """An organisation data category; a Fides key or an unknown parent is a 422."""
    key = data["key"]
    known = registry.Known.from_database()
    errors = registry.check_category_key(key) or registry.check_category(
        key, data, known
    )
    if errors:
        raise Unprocessable(errors[0]["message"], errors=errors)
    if key in known.categories:
        raise Conflict(f"The category '{key}' exists already.", code="category-exists")
    category = Category(key=key)
    assign(category, {name: data.get(name) for name in CATEGORY_ATTRIBUTES})
    db.session.add(category)
    db.session.flush()
    audit.record("registry.category_created", actor_id=actor_id, category=key)
    logger.info("registry.category_created %s", key)
    return category


def replace_category(key: str, data: dict[str, Any], actor_id: int | None) -> Category:
    """Replace an organisation category, keeping the fields under it lawful."""
    category = registry.get_category(key)
    known = registry.Known.from_database()
    errors = registry.check_category(key, data, known) or registry.category_problems(
        key, data
    )
    if errors:
        raise Unprocessable(errors[0]["message"], errors=errors)
    assign(category, {name: data.get(name) for name in CATEGORY_ATTRIBUTES})
    db.session.flush()
    audit.record("registry.category_updated", actor_id=actor_id, category=key)
    logger.info("registry.category_updated %s", key)
    return category


def delete_category(key: str, actor_id: int | None) -> None:
    """Remove a category that no field, sub-category, form or task relies on."""
    category = registry.get_category(key)
    usage.refuse_if_used("category", key, usage.category_users(key))
    audit.record("registry.category_deleted", actor_id=actor_id, category=key)
    logger.info("registry.category_deleted %s", key)
    db.session.delete(category)
    db.session.flush()
