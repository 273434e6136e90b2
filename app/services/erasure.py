"""Erasure (Art 17) with an outcome per field, and the ledger that can replay it.

Each system is changed in one transaction: a failure leaves it as it was, and the
other systems still go ahead. The ledger keeps what was done to which row, table
and columns, so the same erasures can be applied again after a system is restored
from a backup; a replay acts only on a row whose subject key still gives the
entry's keyed HMAC, since a restored or reused row key may name someone else.
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
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    delete,
    select,
    text,
    update,
)
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.orm import Session, selectinload

from app.errors import ProblemError, Unprocessable
from app.extensions import db
from app.models import Entity, ErasureEntry, Field, System
from app.models.erasure import RETAIN_GROUNDS
from app.services import audit, connectors, restrictions, subjects
from app.services.connectors import ConnectorFailed

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
        errors += _lift_at_errors(field_id, step)
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


def _lift_at_errors(field_id: str, step: dict[str, Any]) -> list[dict[str, str]]:
    """A restriction lifted already when made would never hold (Art 18)."""
    if step["outcome"] != "restrict":
        return []
    try:
        restrictions.check_lift_at(step.get("lift_at"), "lift_at")
    except Unprocessable:
        message = "Not a future date and time."
        return [{"field": f"plan.{field_id}.lift_at", "message": message}]
    return []


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
    identities: dict[str, str],
    plan: dict[str, dict[str, Any]],
    actor_id: int | None,
    *,
    durable: bool = False,
) -> dict[str, Any]:
    """Carry out the plan per system, all or nothing, and ledger what happened.

    Each system's ledger entries are kept (as pending) before the system is
    touched, so an erasure whose last commit fails is still known to a replay:
    see `_keep_pending`. `durable` says the caller's transaction may be committed
    here, which SQLite needs for that; a workflow step leaves it off.
    """
    subject = subjects.find(identities)
    check_plan(plan)
    plans = row_plans(subject, plan)
    check_columns(plans)
    locator = {"kinds": sorted(identities), "hmac": identity_hmac(identities)}

    reply: dict[str, Any] = {}
    for system_key in sorted({p.match.system.key for p in plans}):
        in_system = [p for p in plans if p.match.system.key == system_key]
        reply[system_key] = _erase_system(in_system, plan, locator, actor_id, durable)
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
    durable: bool,
) -> dict[str, Any]:
    system = plans[0].match.system
    detail = None
    try:
        identifiers = _identifiers(plans)
    except ProblemError as error:
        identifiers, detail = {}, error.detail
    entries = _ledger(plans, plan, locator, actor_id, identifiers)
    if detail is None:
        _keep_pending(entries, durable)
        detail = _carry_out(system, entries)
    else:
        db.session.add_all(entries)
    status = "erased" if detail is None else "failed"
    if status == "erased":
        _restrict(plans, plan, actor_id)
    for entry in entries:
        entry.status = "applied" if detail is None else "failed"
    return _system_reply(plans, status, detail)


def _identifiers(plans: list[RowPlan]) -> dict[tuple[str, str], str | None]:
    """Each row's subject-key value as a keyed HMAC, read before anything changes."""
    system = plans[0].match.system
    found = {}
    with connectors.connect(system) as connection:
        for row_plan in plans:
            entity = row_plan.match.entity
            table = connectors.reflect(connection, system, entity)
            name = connectors.subject_column(entity)
            for row_key in row_plan.match.row_keys:
                value = _read(connection, table, system, row_key, [name])
                digest = row_hmac(name, value[name]) if value else None
                found[(entity.key, restrictions.row_text(row_key))] = digest
    return found


def row_hmac(column_name: str, value: Any) -> str:
    """A keyed HMAC of a row's subject-key value: which subject, never who."""
    return identity_hmac({f"subject:{column_name}": subjects.plain(value)})


def _values_hmac(values: dict[str, Any]) -> str:
    return identity_hmac({f"erased:{k}": subjects.plain(v) for k, v in values.items()})


def _read(
    connection: Connection,
    table: Table,
    system: System,
    row_key: dict[str, Any],
    names: list[str],
) -> dict[str, Any] | None:
    """The named columns of one row, or None when the row is gone."""
    columns = [connectors.column(table, system, name) for name in names]
    found = connection.execute(select(*columns).where(_where(table, row_key))).first()
    return dict(found._mapping) if found is not None else None


def _where(table: Table, row_key: dict[str, Any]) -> Any:
    return and_(*(key == row_key.get(key.name) for key in table.primary_key.columns))


def _carry_out(system: System, entries: list[ErasureEntry]) -> str | None:
    """Apply the entries in one transaction; the problem's detail when it failed."""
    erased: list[str | None] = []
    try:
        with connectors.connect(system) as connection, connection.begin():
            tables: dict[str, Table] = {}
            for entry in entries:
                erased.append(_apply_entry(connection, tables, system, entry))
    except ProblemError as error:
        logger.warning("erasure in system %s rolled back: %s", system.key, error.code)
        return error.detail
    for entry, digest in zip(entries, erased, strict=True):
        entry.erased_hmac = digest
    return None


def _apply_entry(
    connection: Connection,
    tables: dict[str, Table],
    system: System,
    entry: ErasureEntry,
) -> str | None:
    """Carry out one entry; the HMAC of what its columns hold afterwards."""
    name = entry.table_name or ""
    if name not in tables:
        tables[name] = _table(connection, system, name)
    table = tables[name]
    columns = entry.column_names or []
    apply_row(connection, table, system, entry.row_key, entry.outcome, columns)
    if entry.outcome not in ("nulled", "anonymised"):
        return None
    after = _read(connection, table, system, entry.row_key, columns)
    return _values_hmac(after) if after is not None else None


def _table(connection: Connection, system: System, name: str) -> Table:
    try:
        table = Table(name, MetaData(), autoload_with=connection)
    except NoSuchTableError:
        raise ConnectorFailed(
            f"The system '{system.key}' has no table '{name}'.",
            code="connector-mismatch",
            system=system.key,
        ) from None
    if not table.primary_key.columns:
        raise ConnectorFailed(
            f"The table '{name}' of system '{system.key}' has no primary key.",
            code="connector-mismatch",
            system=system.key,
        )
    return table


def apply_row(
    connection: Connection,
    table: Table,
    system: System,
    row_key: dict[str, Any],
    outcome: str,
    columns: list[str],
) -> None:
    """Delete, null or anonymise a row's columns; restrict and retain touch nothing."""
    where = _where(table, row_key)
    if outcome == "deleted_row":
        connection.execute(delete(table).where(where))
        return
    if outcome == "nulled":
        values = {name: None for name in columns}
    elif outcome == "anonymised":
        values = {
            name: anonymous(connectors.column(table, system, name)) for name in columns
        }
    else:
        return
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
    identifiers: dict[tuple[str, str], str | None],
) -> list[ErasureEntry]:
    """One pending entry per row and outcome, naming the table and columns."""
    entries = []
    for row_plan in plans:
        entity = row_plan.match.entity
        for outcome, rows in row_plan.outcomes().items():
            grounds = {plan.get(row.field_id, {}).get("ground") for row in rows}
            for row_key in row_plan.match.row_keys:
                entry = ErasureEntry(
                    actor_id=actor_id,
                    identity_kinds=locator["kinds"],
                    identity_hmac=locator["hmac"],
                    system_key=row_plan.match.system.key,
                    entity_key=entity.key,
                    row_key=row_key,
                    field_ids=[row.field_id for row in rows],
                    table_name=entity.table or entity.key,
                    column_names=[connectors.column_name(row) for row in rows],
                    subject_column=connectors.subject_column(entity),
                    subject_hmac=identifiers.get(
                        (entity.key, restrictions.row_text(row_key))
                    ),
                    outcome=outcome,
                    ground=next(iter(grounds)) if len(grounds) == 1 else None,
                    status="pending",
                )
                entries.append(entry)
    return entries


def _keep_pending(entries: list[ErasureEntry], durable: bool) -> None:
    """Make the pending entries outlive the caller's transaction, where it can be.

    A database that takes several writers (PostgreSQL) commits them in a
    transaction of their own, so even a workflow step that fails after the system
    changed leaves them for a replay. SQLite lets one writer in at a time: there
    the caller's transaction is committed when it allows (`durable`); otherwise
    the entries are kept with its work and share its fate.
    """
    if db.engine.dialect.name != "sqlite" and _commit_apart(entries):
        db.session.add_all(entries)
        return
    db.session.add_all(entries)
    if durable:
        db.session.commit()


def _commit_apart(entries: list[ErasureEntry]) -> bool:
    """Commit the entries in a session of their own; False if that cannot be done."""
    with Session(db.engine, expire_on_commit=False) as apart:
        try:
            # The caller's transaction may hold a lock this insert would wait for.
            apart.execute(text("SET LOCAL lock_timeout = '5s'"))
            apart.add_all(entries)
            apart.commit()
        except DBAPIError:
            apart.rollback()
            logger.warning("erasure ledger: kept with the caller's transaction")
            return False
        apart.expunge_all()
    return True


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


ERASING = ("deleted_row", "nulled", "anonymised")


@dataclass
class Replay:
    """What a replay did in one system: counts, and the entries it could not apply."""

    replayed: int = 0
    already_erased: int = 0
    other_subject: int = 0
    not_applied: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, entries: list[ErasureEntry], reason: str) -> None:
        self.not_applied.extend(
            {"entry": entry.id, "fields": entry.field_ids, "reason": reason}
            for entry in entries
        )

    def counts(self) -> dict[str, int]:
        return {
            "replayed": self.replayed,
            "already_erased": self.already_erased,
            "other_subject": self.other_subject,
            "not_applied": len(self.not_applied),
        }

    def describe(self) -> str:
        """One line of counts, then one line per entry not applied and why."""
        lines = [
            f"{self.replayed} ledger entries replayed, {self.already_erased} already "
            f"erased or gone, {self.other_subject} left alone (the row holds another "
            f"subject now), {len(self.not_applied)} not applied"
        ]
        lines += [
            f"  entry {item['entry']} ({', '.join(item['fields'])}) not applied: "
            f"{item['reason']}"
            for item in self.not_applied
        ]
        return "\n".join(lines)


def replay_erasures(actor_id: int | None = None) -> dict[str, Replay]:
    """Apply the ledger again, only to rows that still belong to the erased subject.

    Entries that cannot be applied are reported and the rest go ahead; a row that
    still holds what the erasure left is not touched, so a second replay changes
    nothing more.
    """
    entries = db.session.scalars(
        select(ErasureEntry)
        .where(
            ErasureEntry.status.in_(("applied", "pending")),
            ErasureEntry.outcome.in_(ERASING),
        )
        .order_by(ErasureEntry.id)
    ).all()
    replayed: dict[str, Replay] = {}
    for system_key in sorted({entry.system_key for entry in entries}):
        in_system = [entry for entry in entries if entry.system_key == system_key]
        replayed[system_key] = _replay_system(system_key, in_system)
    counts = {key: value.counts() for key, value in replayed.items()}
    audit.record("registry.erasures_replayed", actor_id=actor_id, systems=counts)
    logger.info("erasures replayed: %s", counts)
    return replayed


def _replay_system(system_key: str, entries: list[ErasureEntry]) -> Replay:
    replay = Replay()
    system = db.session.scalar(select(System).where(System.key == system_key))
    if system is None:
        replay.refuse(entries, "the system is no longer in the registry")
        return replay
    ready = [entry for entry in entries if _recorded(entry, replay)]
    erased: dict[int, str | None] = {}
    try:
        with connectors.connect(system) as connection, connection.begin():
            tables: dict[str, Table] = {}
            for entry in ready:
                _replay_entry(connection, tables, system, entry, replay, erased)
    except ProblemError as error:
        logger.warning("replay in system %s rolled back: %s", system_key, error.code)
        rolled_back = Replay(not_applied=replay.not_applied)
        rolled_back.refuse(ready, error.detail)
        return rolled_back
    for entry in ready:
        if entry.id in erased:
            entry.erased_hmac = erased[entry.id]
    return replay


def _recorded(entry: ErasureEntry, replay: Replay) -> bool:
    """Whether the entry names its table, columns and subject, as replay needs."""
    if not (entry.table_name and entry.column_names):
        replay.refuse([entry], "the entry does not name its table and columns")
        return False
    if not (entry.subject_column and entry.subject_hmac):
        replay.refuse(
            [entry],
            "the entry holds no HMAC of the row's subject key (written before "
            "revision 0019, or the row was gone); check the row by hand",
        )
        return False
    return True


def _replay_entry(
    connection: Connection,
    tables: dict[str, Table],
    system: System,
    entry: ErasureEntry,
    replay: Replay,
    erased: dict[int, str | None],
) -> None:
    """Apply one entry again if its row still belongs to the subject it erased."""
    try:
        state = _row_state(connection, tables, system, entry)
        if state == "erase":
            erased[entry.id] = _apply_entry(connection, tables, system, entry)
    except ConnectorFailed as error:
        replay.refuse([entry], error.detail)
        return
    if state == "erase":
        replay.replayed += 1
    elif state == "other_subject":
        replay.other_subject += 1
    else:
        replay.already_erased += 1


def _row_state(
    connection: Connection,
    tables: dict[str, Table],
    system: System,
    entry: ErasureEntry,
) -> str:
    """`erase`, `already_erased` (gone, or holding what the erasure left) or
    `other_subject` (the row key now names someone else's row)."""
    name = entry.table_name or ""
    if name not in tables:
        tables[name] = _table(connection, system, name)
    subject_column = entry.subject_column or ""
    columns = [] if entry.outcome == "deleted_row" else list(entry.column_names or [])
    names = list(dict.fromkeys([subject_column, *columns]))
    found = _read(connection, tables[name], system, entry.row_key, names)
    if found is None:
        return "already_erased"
    if columns and entry.erased_hmac == _values_hmac({c: found[c] for c in columns}):
        return "already_erased"
    if row_hmac(subject_column, found[subject_column]) != entry.subject_hmac:
        return "other_subject"
    return "erase"
