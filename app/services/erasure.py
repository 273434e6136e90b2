"""Erasure (Art 17) with an outcome per field, and the ledger that can replay it.

Each system is changed in one transaction: a failure leaves it as it was, and the
other systems still go ahead. The ledger keeps what was done to which row, so the
same erasures can be applied again after a system is restored from a backup.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    DateTime,
    Integer,
    Numeric,
    String,
    Table,
    and_,
    delete,
    select,
    update,
)
from sqlalchemy.orm import selectinload

from app.errors import ProblemError, Unprocessable
from app.extensions import db
from app.models import Entity, ErasureEntry, Field, System
from app.models.erasure import RETAIN_GROUNDS
from app.services import audit, connectors, restrictions, subjects

logger = logging.getLogger(__name__)

OUTCOMES = ("delete", "anonymise", "restrict", "retain")
REDACTION = "erased-"


@dataclass
class RowPlan:
    """What one entity's rows of the subject get: a deletion or per-field changes."""

    match: connectors.Match
    delete_row: bool = False
    nulled: list[Field] = field(default_factory=list)
    anonymised: list[Field] = field(default_factory=list)
    restricted: list[Field] = field(default_factory=list)
    retained: list[Field] = field(default_factory=list)

    def outcomes(self) -> dict[str, list[Field]]:
        if self.delete_row:
            return {"deleted_row": list(self.match.entity.fields)}
        named = {
            "nulled": self.nulled,
            "anonymised": self.anonymised,
            "restricted": self.restricted,
            "retained": self.retained,
        }
        return {outcome: rows for outcome, rows in named.items() if rows}


def legal_hold(row: Field) -> bool:
    """Kept by law: a legal-obligation basis, or a retention rule marked as a hold."""
    return row.legal_basis == "legal_obligation" or bool(
        row.retention.get("legal_hold")
    )


def identity_hmac(identities: dict[str, str]) -> str:
    """A keyed HMAC of the identity values: pseudonymous, never the identity."""
    key = current_app.config["SECRET_KEY"].encode()
    material = json.dumps(identities, sort_keys=True).encode()
    return hmac.new(key, material, hashlib.sha256).hexdigest()


# --- checking the plan --------------------------------------------------------------


def _refuse(message: str, errors: list[dict[str, str]]) -> Unprocessable:
    return Unprocessable(message, code="erasure-refused", errors=errors)


def check_plan(plan: dict[str, dict[str, Any]]) -> None:
    """Refuse (422, naming each field) a plan the catalogue or the law forbids."""
    known = {row.field_id: row for row in _catalogued()}
    errors = []
    for field_id, step in sorted(plan.items()):
        row = known.get(field_id)
        message = _step_error(row, step)
        if message:
            errors.append({"field": f"plan.{field_id}", "message": message})
    if errors:
        raise _refuse(
            "The erasure plan cannot be carried out; nothing changed.", errors
        )


def _step_error(row: Field | None, step: dict[str, Any]) -> str | None:
    if row is None:
        return "No such field in the registry."
    outcome, ground = step["outcome"], step.get("ground")
    if outcome in ("delete", "anonymise") and legal_hold(row):
        return f"Under legal hold ({row.legal_basis}): restrict or retain it instead."
    if outcome == "retain" and ground not in RETAIN_GROUNDS:
        return f"Retaining needs an Art 17(3) ground: {', '.join(RETAIN_GROUNDS)}."
    if outcome == "restrict":
        try:
            restrictions.check_ground(ground, "ground")
        except Unprocessable:
            return "Restricting needs an Art 18(1) or Art 17(3) ground."
    return None


def _catalogued() -> list[Field]:
    query = select(Field).options(
        selectinload(Field.entity).selectinload(Entity.system)
    )
    return list(db.session.scalars(query))


def row_plans(
    subject: connectors.Subject, plan: dict[str, dict[str, Any]]
) -> list[RowPlan]:
    """The plan per entity the subject has rows in; entities it omits are left out."""
    plans = []
    for match in subject.matches:
        planned = {
            row.field_id: row for row in match.entity.fields if row.field_id in plan
        }
        if not planned:
            continue
        row_plan = RowPlan(match)
        every = {row.field_id for row in match.entity.fields}
        outcomes = {plan[i]["outcome"] for i in every if i in plan}
        row_plan.delete_row = planned.keys() == every and outcomes == {"delete"}
        if not row_plan.delete_row:
            for field_id, row in planned.items():
                _bucket(row_plan, plan[field_id]["outcome"]).append(row)
        plans.append(row_plan)
    return plans


def _bucket(row_plan: RowPlan, outcome: str) -> list[Field]:
    return {
        "delete": row_plan.nulled,
        "anonymise": row_plan.anonymised,
        "restrict": row_plan.restricted,
        "retain": row_plan.retained,
    }[outcome]


def check_columns(plans: list[RowPlan]) -> None:
    """Refuse (422) nulling a column that must hold a value, before anything changes."""
    errors = []
    for row_plan in plans:
        system = row_plan.match.system
        with connectors.connect(system) as connection:
            table = connectors.reflect(connection, system, row_plan.match.entity)
            for row in row_plan.nulled + row_plan.anonymised:
                column = connectors.column(table, system, connectors.column_name(row))
                if column.nullable or (
                    row in row_plan.anonymised and _kind(column) is not None
                ):
                    continue
                errors.append(
                    {
                        "field": f"plan.{row.field_id}",
                        "message": "The column must hold a value: delete every "
                        "field of the row, or anonymise or restrict this one.",
                    }
                )
    if errors:
        raise _refuse(
            "The erasure plan cannot be carried out; nothing changed.", errors
        )


# --- carrying it out ----------------------------------------------------------------


def erase(
    identities: dict[str, str], plan: dict[str, dict[str, Any]], actor_id: int | None
) -> dict[str, Any]:
    """Carry out the plan per system, all or nothing, and ledger what happened."""
    subject = subjects.find(identities)
    check_plan(plan)
    plans = row_plans(subject, plan)
    check_columns(plans)
    locator = {"kinds": sorted(identities), "hmac": identity_hmac(identities)}

    reply: dict[str, Any] = {}
    for system_key in sorted({p.match.system.key for p in plans}):
        in_system = [p for p in plans if p.match.system.key == system_key]
        reply[system_key] = _erase_system(in_system, plan, locator, actor_id)
    audit.record(
        "registry.subject_erased",
        actor_id=actor_id,
        identity_keys=locator["kinds"],
        systems={key: _outcome_summary(value) for key, value in reply.items()},
    )
    held = {row.field_id for p in plans for row in p.match.entity.fields}
    return {"systems": reply, "not_held": sorted(set(plan) - held)}


def _outcome_summary(system_reply: dict[str, Any]) -> dict[str, Any]:
    fields = {key: value["outcome"] for key, value in system_reply["fields"].items()}
    return {"status": system_reply["status"], "fields": fields}


def _erase_system(
    plans: list[RowPlan],
    plan: dict[str, dict[str, Any]],
    locator: dict[str, Any],
    actor_id: int | None,
) -> dict[str, Any]:
    system = plans[0].match.system
    status, detail = "erased", None
    try:
        with connectors.connect(system) as connection, connection.begin():
            for row_plan in plans:
                _apply(connection, row_plan)
    except ProblemError as error:
        status, detail = "failed", error.detail
        logger.warning("erasure in system %s rolled back: %s", system.key, error.code)
    if status == "erased":
        _restrict(plans, plan, actor_id)
    _ledger(plans, plan, locator, actor_id, "applied" if detail is None else "failed")
    return _system_reply(plans, status, detail)


def _apply(connection: Connection, row_plan: RowPlan) -> None:
    match = row_plan.match
    table = connectors.reflect(connection, match.system, match.entity)
    for row_key in match.row_keys:
        apply_row(
            connection, table, row_plan.match.system, row_key, row_plan.outcomes()
        )


def apply_row(
    connection: Connection,
    table: Table,
    system: System,
    row_key: dict[str, Any],
    outcomes: dict[str, list[Field]],
) -> None:
    """Delete, null or anonymise one row's fields; restrict and retain touch nothing."""
    where = and_(*(key == row_key[key.name] for key in table.primary_key.columns))
    if "deleted_row" in outcomes:
        connection.execute(delete(table).where(where))
        return
    values: dict[str, Any] = {}
    for row in outcomes.get("nulled", []):
        values[connectors.column_name(row)] = None
    for row in outcomes.get("anonymised", []):
        name = connectors.column_name(row)
        values[name] = anonymous(connectors.column(table, system, name))
    if values:
        connection.execute(update(table).where(where).values(values))


def _kind(column: Any) -> type | None:
    for kind in (Boolean, DateTime, Date, Integer, Numeric, String):
        if isinstance(column.type, kind):
            return kind
    return None


def anonymous(column: Any) -> Any:
    """A value of the column's type that carries nothing of the one it replaces.

    Strings get random text (unique columns stay unique); never a hash of the value,
    which would be pseudonymisation, not erasure.
    """
    kind = _kind(column)
    if kind is String:
        length = column.type.length
        token = REDACTION + secrets.token_hex(8)
        if length and length < len(token):
            token = secrets.token_hex(length)[:length]
        return token
    fixed: dict[type | None, Any] = {
        Boolean: False,
        DateTime: datetime(1970, 1, 1, tzinfo=UTC),
        Date: date(1970, 1, 1),
        Integer: 0,
        Numeric: 0,
    }
    return fixed.get(kind)


def _restrict(
    plans: list[RowPlan], plan: dict[str, dict[str, Any]], actor_id: int | None
) -> None:
    for row_plan in plans:
        match = row_plan.match
        for row in row_plan.restricted:
            step = plan[row.field_id]
            for row_key in match.row_keys:
                restrictions.restrict(
                    match.system.key,
                    match.entity.key,
                    row_key,
                    row.field_id,
                    step["ground"],
                    step.get("lift_at"),
                    actor_id,
                )


def _ledger(
    plans: list[RowPlan],
    plan: dict[str, dict[str, Any]],
    locator: dict[str, Any],
    actor_id: int | None,
    status: str,
) -> None:
    for row_plan in plans:
        match = row_plan.match
        for outcome, rows in row_plan.outcomes().items():
            grounds = {plan.get(row.field_id, {}).get("ground") for row in rows}
            for row_key in match.row_keys:
                db.session.add(
                    ErasureEntry(
                        actor_id=actor_id,
                        identity_kinds=locator["kinds"],
                        identity_hmac=locator["hmac"],
                        system_key=match.system.key,
                        entity_key=match.entity.key,
                        row_key=row_key,
                        field_ids=[row.field_id for row in rows],
                        outcome=outcome,
                        ground=next(iter(grounds)) if len(grounds) == 1 else None,
                        status=status,
                    )
                )


def _system_reply(
    plans: list[RowPlan], status: str, detail: str | None
) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for row_plan in plans:
        rows = len(row_plan.match.row_keys)
        for outcome, named in row_plan.outcomes().items():
            for row in named:
                done = outcome if status == "erased" else "unchanged"
                fields[row.field_id] = {"outcome": done, "rows": rows}
    reply: dict[str, Any] = {"status": status, "fields": fields}
    if detail:
        reply["detail"] = detail
    return reply


# --- replay after a restore ---------------------------------------------------------


def replay_erasures(actor_id: int | None = None) -> dict[str, int]:
    """Apply every applied ledger entry again; rows already gone are skipped."""
    entries = db.session.scalars(
        select(ErasureEntry)
        .where(ErasureEntry.status == "applied")
        .order_by(ErasureEntry.id)
    ).all()
    fields = {row.field_id: row for row in _catalogued()}
    replayed: dict[str, int] = {}
    for system_key in sorted({entry.system_key for entry in entries}):
        in_system = [entry for entry in entries if entry.system_key == system_key]
        replayed[system_key] = _replay_system(in_system, fields)
    audit.record("registry.erasures_replayed", actor_id=actor_id, systems=replayed)
    logger.info("erasures replayed: %s", replayed)
    return replayed


def _replay_system(entries: list[ErasureEntry], fields: dict[str, Field]) -> int:
    system = fields[entries[0].field_ids[0]].entity.system
    tables: dict[str, Table] = {}
    with connectors.connect(system) as connection, connection.begin():
        for entry in entries:
            entity = fields[entry.field_ids[0]].entity
            if entity.key not in tables:
                tables[entity.key] = connectors.reflect(connection, system, entity)
            outcomes = {entry.outcome: [fields[i] for i in entry.field_ids]}
            apply_row(connection, tables[entity.key], system, entry.row_key, outcomes)
    return len(entries)
