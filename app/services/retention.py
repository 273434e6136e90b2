"""Retention enforcement (Art 5(1)(e)): sweeps that end what is kept too long.

Each catalogue field whose retention rule names `on_expiry` is enforced: the rows
whose anchor date plus the period has passed (or every row once a fixed `until`
date has passed) are restricted, anonymised or deleted through the connectors.
The expired rows are selected in SQL, one query per entity: the cut-off date is
computed once per rule as today minus the period, so the database compares a
column with a constant (and can use an index) instead of Python visiting rows.
The cut-off is not rolled to the next working day: Regulation 1182/71 moves the
end of a period for doing an act, while storage limitation ends the keeping; the
sweep runs daily, so a weekend delays nothing by more than the run interval.

Nothing here names values: plans and reports keep primary keys and field ids.
"""

from __future__ import annotations

import calendar as month_days
import json
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Table,
    and_,
    bindparam,
    case,
    delete,
    false,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import selectinload

from app import clock
from app.calendar import Period, Unit
from app.errors import Conflict, NotFound, ProblemError, Unprocessable
from app.extensions import db
from app.models import (
    Entity,
    Field,
    HumanTask,
    Instance,
    LegalHold,
    Restriction,
    RetentionApplied,
    RetentionRun,
    System,
)
from app.models.erasure import RETAIN_GROUNDS
from app.models.instances import RUNNING
from app.services import audit, connectors, context, erasure, instances, restrictions
from app.services.operators import as_operator
from app.services.registry_schemas import RETENTION_OUTCOMES

logger = logging.getLogger(__name__)

PROCESS_ID = "retention_sweep"
REVIEW_TASK = "review_sweep"
# Blocking at the end of retention keeps data only for legal claims by default.
DEFAULT_GROUND = "art_17_3_e"
# The outcomes that change a value in place (restrict only records a restriction).
ROW_OUTCOMES = ("delete", "anonymise")
# Rows per DELETE statement: well under every database's bound-parameter limit.
CHUNK = 500


@dataclass
class Rule:
    """A field's retention rule in a form the sweep can compare rows with."""

    field: Field
    outcome: str
    ground: str
    column: str | None = None
    period: Period | None = None
    until: date | None = None
    # Read once per sweep, not per row: the ORM's attribute access is slow.
    field_id: str = ""
    kept_by_law: bool = False

    def due(self, table: Table, today: date) -> Any:
        """An SQL condition true for the rows past their period."""
        if self.until is not None:
            return literal(True) if self.until < today else false()
        anchor = table.c[self.column]
        cutoff: Any = cutoff_date(self.period, today)
        if isinstance(anchor.type, DateTime):
            cutoff = datetime.combine(cutoff, datetime.min.time())
        return and_(anchor.is_not(None), anchor < cutoff)


@dataclass
class Sweep:
    """What a plan found: rows to change, rows held with why, findings, failures."""

    now: datetime
    systems: dict[str, dict[str, Any]] = field(default_factory=dict)
    held: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned_at": self.now.isoformat(),
            "systems": self.systems,
            "held": self.held,
            "findings": self.findings,
            "counts": self.counts(),
        }

    def counts(self) -> dict[str, int]:
        rows = [
            row
            for system in self.systems.values()
            for entity in system.get("entities", {}).values()
            for row in entity["rows"]
        ]
        return {
            "to_do": len(rows),
            "held": len(self.held),
            "findings": len(self.findings),
            "failed_systems": sum(
                1 for s in self.systems.values() if s["status"] == "failed"
            ),
        }


# --- reading the rules --------------------------------------------------------------


def cutoff_date(period: Period | None, today: date) -> date:
    """The anchor date before which a row is past the period, as of today."""
    assert period is not None
    if period.unit is Unit.DAYS:
        return today - timedelta(days=period.amount)
    if period.unit is Unit.WEEKS:
        return today - timedelta(weeks=period.amount)
    months = period.amount * (12 if period.unit is Unit.YEARS else 1)
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    last = month_days.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(today.day, last))


def read_rule(row: Field) -> Rule | str | None:
    """The field's enforced rule, a message saying why it cannot be, or None."""
    retention = row.retention or {}
    outcome = retention.get("on_expiry")
    if not outcome:
        return None
    if outcome not in RETENTION_OUTCOMES:
        return f"on_expiry must be one of {', '.join(RETENTION_OUTCOMES)}."
    ground = retention.get("ground") or DEFAULT_GROUND
    if ground not in RETAIN_GROUNDS:
        return f"The ground must be an Art 17(3) ground: {', '.join(RETAIN_GROUNDS)}."
    rule = Rule(
        row,
        outcome,
        ground,
        column=retention.get("anchor_column"),
        field_id=row.field_id,
        kept_by_law=erasure.legal_hold(row),
    )
    if retention.get("until"):
        return _with_until(rule, retention["until"])
    return _with_period(rule, retention.get("period"))


def _with_until(rule: Rule, text: Any) -> Rule | str:
    try:
        rule.until = date.fromisoformat(str(text))
    except ValueError:
        return "The until date does not parse; write it as 2031-12-31."
    return rule


def _with_period(rule: Rule, text: Any) -> Rule | str:
    if not rule.column:
        return "Name the anchor_column whose date the period runs from."
    try:
        rule.period = Period.parse(str(text))
    except ValueError:
        return "The period does not parse; write one unit, such as P7Y or P30D."
    if rule.period.unit is Unit.HOURS:
        return "A retention period runs in days, weeks, months or years."
    return rule


# --- planning -----------------------------------------------------------------------


def _systems(keys: list[str] | None = None) -> list[System]:
    query = (
        select(System)
        .where(System.connection.is_not(None))
        .options(
            selectinload(System.entities)
            .selectinload(Entity.fields)
            .selectinload(Field.entity)
        )
        .order_by(System.key)
    )
    if keys is not None:
        query = query.where(System.key.in_(keys))
    return list(db.session.scalars(query))


def plan(now: datetime | None = None, system_keys: list[str] | None = None) -> Sweep:
    """Per system and entity, the rows past their period and what happens to them."""
    sweep = Sweep(now or clock.now())
    for system in _systems(system_keys):
        entry: dict[str, Any] = {
            "review": system.retention_review,
            "status": "planned",
            "entities": {},
        }
        try:
            with connectors.connect(system) as connection:
                for entity in system.entities:
                    found = _plan_entity(connection, system, entity, sweep)
                    if found is not None:
                        entry["entities"][entity.key] = found
        except ProblemError as error:
            logger.warning(
                "retention plan: system %s failed: %s", system.key, error.code
            )
            entry = {
                **entry,
                "status": "failed",
                "detail": error.detail,
                "entities": {},
            }
        if entry["entities"] or entry["status"] == "failed":
            sweep.systems[system.key] = entry
    return sweep


def _rules(table: Table, entity: Entity, sweep: Sweep) -> list[Rule]:
    rules = []
    for row in entity.fields:
        rule = read_rule(row)
        if isinstance(rule, str):
            sweep.findings.append({"field": row.field_id, "message": rule})
        elif rule is not None and rule.column and rule.column not in table.c:
            sweep.findings.append(
                {
                    "field": row.field_id,
                    "message": f"The anchor column '{rule.column}' is not in the "
                    f"table '{table.name}'.",
                }
            )
        elif rule is not None:
            rules.append(rule)
    return rules


def _plan_entity(
    connection: Connection, system: System, entity: Entity, sweep: Sweep
) -> dict[str, Any] | None:
    table = connectors.reflect(connection, system, entity)
    rules = _rules(table, entity, sweep)
    if not rules:
        return None
    dues = [rule.due(table, sweep.now.date()) for rule in rules]
    keys = list(table.primary_key.columns)
    flags = [
        case((due, True), else_=False).label(f"due_{i}") for i, due in enumerate(dues)
    ]
    query = select(*keys, *flags).where(or_(*dues)).order_by(*keys)
    covers = _Covers(system.key, entity.key, sweep.now)
    covers.every = {row.field_id for row in entity.fields}
    rows = []
    for found in connection.execute(query):
        row_key = {key.name: found[i] for i, key in enumerate(keys)}
        due = [rule for i, rule in enumerate(rules) if found[len(keys) + i]]
        planned = _plan_row(row_key, due, covers, sweep)
        if planned is not None:
            rows.append(planned)
    return {"rows": rows, "counts": _entity_counts(rows)} if rows else None


class _Covers:
    """What keeps an entity's rows: holds, 17(3) restrictions, outcomes already done.

    Each is read in one query per entity, not per row.
    """

    def __init__(self, system_key: str, entity_key: str, now: datetime) -> None:
        self.system_key, self.entity_key = system_key, entity_key
        self.holds = _active_holds(system_key, entity_key, now)
        self.restricted = _kept_restrictions(system_key, entity_key, now)
        self.done = _done(system_key, entity_key)
        self.every: set[str] = set()
        self.any = bool(self.holds or self.restricted or self.done)

    def hold(self, row: str) -> LegalHold | None:
        return self.holds.get(row) or self.holds.get(None)


def _active_holds(
    system_key: str, entity_key: str, now: datetime
) -> dict[str | None, LegalHold]:
    query = select(LegalHold).where(
        LegalHold.system_key == system_key,
        LegalHold.entity_key == entity_key,
        LegalHold.released_at.is_(None),
        or_(LegalHold.until.is_(None), LegalHold.until > now),
    )
    return {hold.row: hold for hold in db.session.scalars(query.order_by(LegalHold.id))}


def _kept_restrictions(
    system_key: str, entity_key: str, now: datetime
) -> dict[str, dict[str | None, str]]:
    query = select(Restriction).where(
        Restriction.system_key == system_key,
        Restriction.entity_key == entity_key,
        Restriction.ground.in_(tuple(RETAIN_GROUNDS)),
        Restriction.lifted_at.is_(None),
        or_(Restriction.lift_at.is_(None), Restriction.lift_at > now),
    )
    found: dict[str, dict[str | None, str]] = {}
    for restriction in db.session.scalars(query):
        found.setdefault(restriction.row, {})[restriction.field_id] = restriction.ground
    return found


def _done(system_key: str, entity_key: str) -> set[tuple[str, str]]:
    query = select(RetentionApplied.row, RetentionApplied.field_id).where(
        RetentionApplied.system_key == system_key,
        RetentionApplied.entity_key == entity_key,
    )
    return {(row, field_id) for row, field_id in db.session.execute(query)}


def _plan_row(
    row_key: dict[str, Any],
    due: list[Rule],
    covers: _Covers,
    sweep: Sweep,
) -> dict[str, Any] | None:
    # Canonical JSON only where something may cover the row: it is costly per row.
    text = restrictions.row_text(row_key) if covers.any else ""
    due = [rule for rule in due if (text, rule.field_id) not in covers.done]
    if not due:
        return None
    where = {"system": covers.system_key, "entity": covers.entity_key, "key": row_key}
    hold = covers.hold(text)
    if hold is not None:
        sweep.held.append({**where, **_held_by_hold(hold, due)})
        return None
    outcomes: dict[str, str] = {}
    for rule in due:
        why = _field_held(rule, covers.restricted.get(text, {}))
        if why:
            sweep.held.append({**where, "fields": [rule.field_id], **why})
        else:
            outcomes[rule.field_id] = rule.outcome
    if not outcomes:
        return None
    every = covers.every
    whole = outcomes.keys() == every and set(outcomes.values()) == {"delete"}
    return {"key": row_key, "delete_row": whole, "fields": outcomes}


def _held_by_hold(hold: LegalHold, due: list[Rule]) -> dict[str, Any]:
    return {
        "fields": sorted(rule.field_id for rule in due),
        "reason": "legal_hold",
        "hold_id": hold.id,
        "detail": hold.reason,
    }


def _field_held(rule: Rule, restricted: dict[str | None, str]) -> dict[str, Any]:
    """Why this field of the row may not be anonymised or deleted; empty if it may."""
    if rule.outcome == "restrict":
        return {}
    if rule.kept_by_law:
        return {
            "reason": "legal_obligation",
            "detail": "The field is kept under a legal obligation (Art 17(3)(b)).",
        }
    ground = restricted.get(rule.field_id) or restricted.get(None)
    if ground:
        return {
            "reason": "restriction",
            "detail": f"Restricted under {RETAIN_GROUNDS[ground]}.",
        }
    return {}


def _entity_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"delete_row": 0, "delete": 0, "anonymise": 0, "restrict": 0}
    for row in rows:
        if row["delete_row"]:
            counts["delete_row"] += 1
            continue
        for outcome in set(row["fields"].values()):
            counts[outcome] += 1
    return {outcome: count for outcome, count in counts.items() if count}


# --- carrying it out ----------------------------------------------------------------


def apply(run: RetentionRun, system_keys: list[str], actor_id: int | None) -> None:
    """Apply the run's plan for these systems, re-checked now; one transaction each."""
    approved = run.plan.get("systems", {})
    fresh = plan(clock.now(), system_keys)
    outcome = dict(run.outcome or {})
    for key in system_keys:
        outcome[key] = _apply_system(run, key, approved.get(key), fresh, actor_id)
    run.outcome = outcome
    held = run.plan.get("held", [])
    held_keys = {_held_key(item) for item in held}
    run.plan = {
        **run.plan,
        "held": held + [i for i in fresh.held if _held_key(i) not in held_keys],
    }


def _held_key(item: dict[str, Any]) -> str:
    return restrictions.row_text(
        {k: item[k] for k in ("system", "entity", "key", "fields")}
    )


def _apply_system(
    run: RetentionRun,
    key: str,
    approved: dict[str, Any] | None,
    fresh: Sweep,
    actor_id: int | None,
) -> dict[str, Any]:
    current = fresh.systems.get(key)
    if current is not None and current["status"] == "failed":
        return {"status": "failed", "detail": current["detail"], "counts": {}}
    if approved is None or approved["status"] == "failed":
        return {
            "status": "failed",
            "detail": (approved or {}).get("detail"),
            "counts": {},
        }
    work = _still_due(approved["entities"], (current or {}).get("entities", {}))
    system = db.session.scalars(select(System).where(System.key == key)).one()
    try:
        _change(system, work)
    except ProblemError as error:
        logger.warning("retention sweep in system %s rolled back: %s", key, error.code)
        return {"status": "failed", "detail": error.detail, "counts": {}}
    _after(run, system, work, actor_id)
    counts = {entity: _entity_counts(rows) for entity, rows in work.items() if rows}
    return {"status": "applied", "counts": counts}


def _still_due(
    approved: dict[str, Any], current: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """The approved rows and outcomes that the fresh plan still finds due."""
    work: dict[str, list[dict[str, Any]]] = {}
    for entity, planned in approved.items():
        now_due = {
            _identity(row["key"]): row
            for row in current.get(entity, {}).get("rows", [])
        }
        rows = []
        for row in planned["rows"]:
            fresh = now_due.get(_identity(row["key"]))
            if fresh is None:
                continue
            fields = {
                field_id: outcome
                for field_id, outcome in row["fields"].items()
                if fresh["fields"].get(field_id) == outcome
            }
            if fields:
                whole = row["delete_row"] and fresh["delete_row"]
                rows.append({"key": row["key"], "delete_row": whole, "fields": fields})
        work[entity] = rows
    return work


def _identity(row_key: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(row_key.items()))


def _change(system: System, work: dict[str, list[dict[str, Any]]]) -> None:
    """Carry out the work in bulk statements: deletions by key, updates batched."""
    entities = {entity.key: entity for entity in system.entities}
    fields = {row.field_id: row for e in system.entities for row in e.fields}
    with connectors.connect(system) as connection, connection.begin():
        for entity_key, rows in work.items():
            if not rows:
                continue
            table = connectors.reflect(connection, system, entities[entity_key])
            gone = [row["key"] for row in rows if row["delete_row"]]
            for start in range(0, len(gone), CHUNK):
                _delete(connection, table, gone[start : start + CHUNK])
            kept = [row for row in rows if not row["delete_row"]]
            _update(connection, table, system, kept, fields)


def _delete(connection: Connection, table: Table, keys: list[dict[str, Any]]) -> None:
    columns = list(table.primary_key.columns)
    if len(columns) == 1:
        where = columns[0].in_([key[columns[0].name] for key in keys])
    else:
        values = [tuple(key[c.name] for c in columns) for key in keys]
        where = tuple_(*columns).in_(values)
    connection.execute(delete(table).where(where))


def _update(
    connection: Connection,
    table: Table,
    system: System,
    rows: list[dict[str, Any]],
    fields: dict[str, Field],
) -> None:
    """Null or anonymise fields, one executemany per set of fields changed."""
    groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    for row in rows:
        changed = tuple(
            sorted((i, o) for i, o in row["fields"].items() if o in ROW_OUTCOMES)
        )
        if changed:
            groups.setdefault(changed, []).append(row["key"])
    keys = list(table.primary_key.columns)
    for changed, row_keys in groups.items():
        columns = {connectors.column_name(fields[i]): o for i, o in changed}
        for name in columns:
            connectors.column(table, system, name)
        statement = (
            update(table)
            .where(and_(*(key == bindparam(f"key_{key.name}") for key in keys)))
            .values({name: bindparam(f"value_{name}") for name in columns})
        )
        connection.execute(statement, [_params(table, k, columns) for k in row_keys])


def _params(
    table: Table, row_key: dict[str, Any], columns: dict[str, str]
) -> dict[str, Any]:
    """One row's bound values: its key, and a fresh anonymous value (or NULL) each."""
    values = {f"key_{name}": value for name, value in row_key.items()}
    for name, outcome in columns.items():
        anonymised = outcome == "anonymise"
        values[f"value_{name}"] = (
            erasure.anonymous(table.c[name]) if anonymised else None
        )
    return values


def _after(
    run: RetentionRun,
    system: System,
    work: dict[str, list[dict[str, Any]]],
    actor_id: int | None,
) -> None:
    """Restrict what is blocked and ledger what was done, once the system committed.

    Both are written as bulk inserts: a sweep may cover a million rows.
    """
    grounds = _grounds(system)
    blocked, ledger = [], []
    now = clock.now()
    for entity_key, rows in work.items():
        where = {"system_key": system.key, "entity_key": entity_key}
        for row in rows:
            if row["delete_row"]:
                continue
            text = restrictions.row_text(row["key"])
            for field_id, outcome in row["fields"].items():
                ledger.append(
                    {
                        **where,
                        "run_id": run.id,
                        "row": text,
                        "field_id": field_id,
                        "outcome": outcome,
                        "applied_at": now,
                    }
                )
                if outcome == "restrict":
                    blocked.append(
                        {
                            **where,
                            "row": text,
                            "field_id": field_id,
                            "ground": grounds[field_id],
                            "lift_at": None,
                            "created_at": now,
                            "created_by": actor_id,
                        }
                    )
    if blocked:
        db.session.execute(insert(Restriction), blocked)
    if ledger:
        db.session.execute(insert(RetentionApplied), ledger)


def _grounds(system: System) -> dict[str, str]:
    """Each enforced field's Art 17(3) ground, checked as a restriction ground."""
    grounds = {}
    for entity in system.entities:
        for row in entity.fields:
            rule = read_rule(row)
            if isinstance(rule, Rule):
                grounds[row.field_id] = restrictions.check_ground(rule.ground, "ground")
    return grounds


# --- runs ---------------------------------------------------------------------------


def get_run(run_id: int) -> RetentionRun:
    run = db.session.get(RetentionRun, run_id)
    if run is None:
        raise NotFound(f"No retention run {run_id}.", code="retention-run-unknown")
    return run


def list_runs() -> list[RetentionRun]:
    query = select(RetentionRun).order_by(RetentionRun.id.desc())
    return list(db.session.scalars(query))


def report(run: RetentionRun) -> dict[str, Any]:
    """The run as its report: found, done, held and why, failures, findings."""
    return {
        "id": run.id,
        "instance_id": run.instance_id,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "plan": run.plan,
        "outcome": run.outcome,
        "counts": run.counts,
        "held": run.plan.get("held", []),
        "findings": run.plan.get("findings", []),
        "reviewed_by": run.reviewed_by,
        "review_comment": run.review_comment,
    }


def _part(run: RetentionRun, reviewed: bool) -> list[str]:
    return sorted(
        key
        for key, system in run.plan.get("systems", {}).items()
        if bool(system["review"]) is reviewed
    )


def review_summary(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """For the DPO: per system, entity and outcome, the count and the rows' keys."""
    summary = []
    for system_key, system in sorted(sweep["systems"].items()):
        if not system["review"] or system["status"] != "planned":
            continue
        for entity_key, entity in sorted(system["entities"].items()):
            summary.append(
                {
                    "system": system_key,
                    "entity": entity_key,
                    "counts": entity["counts"],
                    "rows": [
                        {
                            "key": row["key"],
                            "delete_row": row["delete_row"],
                            "fields": row["fields"],
                        }
                        for row in entity["rows"]
                    ],
                }
            )
    return summary


def start_sweep(actor_id: int | None = None) -> Instance:
    """Start one retention_sweep instance; 409 while another is still running."""
    running = db.session.scalar(
        select(Instance).where(
            Instance.bpmn_process_id == PROCESS_ID, Instance.status == RUNNING
        )
    )
    if running is not None:
        raise Conflict(
            "A retention sweep is already running; finish or cancel it first.",
            code="retention-sweep-running",
            instance_id=running.id,
        )
    instance = instances.start(PROCESS_ID, {}, None, actor_id)
    logger.info("retention sweep started as instance %s", instance.id)
    return instance


# --- legal holds --------------------------------------------------------------------


def _check_entity(system_key: str, entity_key: str) -> Entity:
    entity = db.session.scalar(
        select(Entity)
        .join(System, Entity.system_id == System.id)
        .where(System.key == system_key, Entity.key == entity_key)
    )
    if entity is None:
        raise Unprocessable(
            "No such entity in the registry; no hold was placed.",
            code="hold-entity-unknown",
            errors=[
                {"field": "entity", "message": f"{system_key}.{entity_key} is unknown."}
            ],
        )
    return entity


def place_hold(
    system_key: str,
    entity_key: str,
    row_key: dict[str, Any] | None,
    reason: str,
    until: datetime | None,
    actor_id: int | None,
) -> LegalHold:
    """Hold one row (every row when None) of an entity from every sweep."""
    _check_entity(system_key, entity_key)
    if until is not None and until <= clock.now():
        raise Unprocessable(
            "A hold that ends in the past holds nothing.",
            code="hold-until-past",
            errors=[{"field": "until", "message": "Give a time in the future."}],
        )
    hold = LegalHold(
        system_key=system_key,
        entity_key=entity_key,
        row=restrictions.row_text(row_key) if row_key else None,
        reason=reason,
        until=until,
        created_by=actor_id,
    )
    db.session.add(hold)
    db.session.flush()
    audit.record(
        "retention.hold_placed",
        actor_id=actor_id,
        hold_id=hold.id,
        system=system_key,
        entity=entity_key,
        whole_entity=row_key is None,
    )
    return hold


def list_holds() -> list[LegalHold]:
    query = select(LegalHold).where(LegalHold.released_at.is_(None))
    return list(db.session.scalars(query.order_by(LegalHold.id)))


def release_hold(hold_id: int, actor_id: int | None) -> LegalHold:
    """End a hold; it stays on record with who released it and when."""
    hold = db.session.get(LegalHold, hold_id)
    if hold is None or hold.released_at is not None:
        raise NotFound(f"No legal hold {hold_id} in force.", code="hold-unknown")
    hold.released_at = clock.now()
    hold.released_by = actor_id
    audit.record("retention.hold_released", actor_id=actor_id, hold_id=hold.id)
    return hold


def described_hold(hold: LegalHold) -> dict[str, Any]:
    return {
        "id": hold.id,
        "system": hold.system_key,
        "entity": hold.entity_key,
        "row_key": json.loads(hold.row) if hold.row else None,
        "reason": hold.reason,
        "until": hold.until.isoformat() if hold.until else None,
        "created_at": hold.created_at.isoformat(),
    }


# --- operators of the retention_sweep process -------------------------------------


def plan_operator() -> dict[str, Any]:
    """Plan a sweep as a run of this instance; the task data gets counts and keys."""
    sweep = plan()
    document = sweep.as_dict()
    run = RetentionRun(
        instance_id=context.current_instance_id(),
        started_at=sweep.now,
        plan=document,
        counts=document["counts"],
    )
    db.session.add(run)
    db.session.flush()
    direct, reviewed = _part(run, False), _part(run, True)
    to_do = document["counts"]["to_do"] > 0 or document["counts"]["failed_systems"] > 0
    audit.record(
        "retention.planned",
        instance_id=run.instance_id,
        run_id=run.id,
        systems=sorted(document["systems"]),
        counts=document["counts"],
        finding_fields=sorted(f["field"] for f in document["findings"]),
    )
    return {
        "run_id": run.id,
        "to_do": to_do,
        "direct": direct,
        "review_needed": bool(reviewed),
        "review": review_summary(document),
        "counts": document["counts"],
    }


def apply_operator(
    run_id: int, reviewed: bool, approved: bool = True, comment: str | None = None
) -> dict[str, Any]:
    """Apply the part of the run without review, or the reviewed part if approved."""
    run = get_run(run_id)
    keys = _part(run, reviewed)
    if reviewed:
        run.review_comment = comment or None
    if not keys:
        return {"run_id": run.id, "systems": []}
    if not approved:
        run.outcome = {
            **(run.outcome or {}),
            **{key: {"status": "rejected", "counts": {}} for key in keys},
        }
        return {"run_id": run.id, "systems": keys, "rejected": True}
    if reviewed:
        run.reviewed_by = _reviewer(run.instance_id)
    apply(run, keys, run.reviewed_by)
    audit.record(
        "retention.applied",
        instance_id=run.instance_id,
        run_id=run.id,
        systems={key: _audit_outcome(run.outcome[key]) for key in keys},
    )
    return {"run_id": run.id, "systems": keys}


def _reviewer(instance_id: str | None) -> int | None:
    return db.session.scalar(
        select(HumanTask.completed_by_id).where(
            HumanTask.instance_id == instance_id,
            HumanTask.bpmn_id == REVIEW_TASK,
        )
    )


def _audit_outcome(outcome: dict[str, Any]) -> dict[str, Any]:
    return {"status": outcome["status"], "counts": outcome.get("counts", {})}


def finish_operator(run_id: int) -> dict[str, Any]:
    """Close the run: its status and counts; what it did stays in its report."""
    run = get_run(run_id)
    statuses = {entry["status"] for entry in (run.outcome or {}).values()}
    run.status = (
        "empty"
        if not run.outcome
        else "rejected"
        if statuses == {"rejected"}
        else "applied"
    )
    run.finished_at = clock.now()
    run.counts = {
        **run.plan.get("counts", {}),
        "held": len(run.plan.get("held", [])),
        "failed_systems": sum(
            1 for entry in (run.outcome or {}).values() if entry["status"] == "failed"
        ),
    }
    audit.record(
        "retention.swept",
        instance_id=run.instance_id,
        run_id=run.id,
        status=run.status,
        counts=run.counts,
    )
    logger.info("retention run %s finished: %s", run.id, run.status)
    return {"run_id": run.id, "status": run.status}


OPERATORS = {
    "retention.plan": as_operator(plan_operator),
    "retention.apply": as_operator(apply_operator),
    "retention.finish": as_operator(finish_operator),
}
