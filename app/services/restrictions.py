"""Restriction of processing (Art 18): restricted values may only be stored."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from app import clock
from app.errors import Unprocessable
from app.extensions import db
from app.models import Entity, Field, Restriction, System
from app.models.erasure import RESTRICTION_GROUNDS
from app.services import audit

if TYPE_CHECKING:
    from app.services.connectors import Subject

logger = logging.getLogger(__name__)


def row_text(row_key: dict[str, Any]) -> str:
    """A row key as canonical JSON, the form restrictions are looked up by."""
    return json.dumps(row_key, sort_keys=True, default=str)


def active(
    system_key: str, entity_key: str, row_key: dict[str, Any]
) -> list[Restriction]:
    """The row's restrictions in force: not lifted, and before their lift date."""
    query = select(Restriction).where(
        Restriction.system_key == system_key,
        Restriction.entity_key == entity_key,
        Restriction.row == row_text(row_key),
        Restriction.lifted_at.is_(None),
        or_(Restriction.lift_at.is_(None), Restriction.lift_at > clock.now()),
    )
    return list(db.session.scalars(query.order_by(Restriction.id)))


def restricted_fields(
    system_key: str, entity_key: str, row_key: dict[str, Any]
) -> set[str]:
    """The full ids of the row's fields that no read path may return."""
    return set(by_field(system_key, entity_key, row_key))


def by_field(
    system_key: str, entity_key: str, row_key: dict[str, Any]
) -> dict[str, Restriction]:
    """Each restricted field id of the row, to the restriction that holds it."""
    found: dict[str, Restriction] = {}
    for restriction in active(system_key, entity_key, row_key):
        ids = (
            [restriction.field_id]
            if restriction.field_id
            else _entity_field_ids(system_key, entity_key)
        )
        for field_id in ids:
            found.setdefault(field_id, restriction)
    return found


def _entity_field_ids(system_key: str, entity_key: str) -> list[str]:
    query = (
        select(Field.key)
        .join(Entity, Field.entity_id == Entity.id)
        .join(System, Entity.system_id == System.id)
        .where(System.key == system_key, Entity.key == entity_key)
    )
    prefix = f"{system_key}.{entity_key}."
    return [prefix + key for key in db.session.scalars(query)]


def check_ground(ground: str | None, where: str) -> str:
    """The ground, refused (422) unless it is an Art 18(1) or 17(3) code."""
    if ground in RESTRICTION_GROUNDS:
        return ground
    raise Unprocessable(
        f"A restriction needs a ground, one of {', '.join(RESTRICTION_GROUNDS)}.",
        code="restriction-ground",
        errors=[{"field": where, "message": "Not a restriction ground."}],
    )


def check_lift_at(lift_at: Any, where: str) -> None:
    """Refuse (422) a lift date not in the future: such a restriction never holds."""
    if lift_at is None:
        return
    if isinstance(lift_at, datetime) and lift_at.tzinfo and lift_at > clock.now():
        return
    raise Unprocessable(
        "A restriction's lift date must be in the future; nothing was restricted.",
        code="restriction-lift-at",
        errors=[{"field": where, "message": "Not a future date and time."}],
    )


def restrict(
    system_key: str,
    entity_key: str,
    row_key: dict[str, Any],
    field_id: str | None,
    ground: str,
    lift_at: datetime | None,
    actor_id: int | None,
) -> Restriction:
    """Restrict one field of a row (every field when None); the caller commits."""
    check_lift_at(lift_at, "lift_at")
    restriction = Restriction(
        system_key=system_key,
        entity_key=entity_key,
        row=row_text(row_key),
        field_id=field_id,
        ground=check_ground(ground, "ground"),
        lift_at=lift_at,
        created_by=actor_id,
    )
    db.session.add(restriction)
    db.session.flush()
    return restriction


def lift(
    system_key: str,
    entity_key: str,
    row_key: dict[str, Any],
    field_ids: Collection[str] | None,
    actor_id: int | None,
) -> list[Restriction]:
    """Lift the row's restrictions in force on the fields named (all when None)."""
    lifted = []
    for restriction in active(system_key, entity_key, row_key):
        if field_ids is not None and restriction.field_id not in field_ids:
            continue
        restriction.lifted_at = clock.now()
        restriction.lifted_by = actor_id
        lifted.append(restriction)
    return lifted


def described(restriction: Restriction) -> dict[str, Any]:
    """What a reader is told instead of a restricted value."""
    lift_at = restriction.lift_at.isoformat() if restriction.lift_at else None
    return {
        "status": "restricted",
        "ground": restriction.ground,
        "article": RESTRICTION_GROUNDS[restriction.ground],
        "lift_at": lift_at,
    }


# --- a subject's rows ---------------------------------------------------------------


def _subject_fields(subject: Subject, field_ids: list[str] | None) -> set[str]:
    held = {row.field_id for row in subject.fields}
    if field_ids is None:
        return held
    unknown = sorted(set(field_ids) - held)
    if unknown:
        raise Unprocessable(
            "The subject has no rows holding some of the fields named; nothing "
            "was restricted.",
            code="field-not-held",
            errors=[
                {"field": f"fields.{i}", "message": "Not held for this subject."}
                for i in unknown
            ],
        )
    return set(field_ids)


def restrict_subject(
    subject: Subject,
    field_ids: list[str] | None,
    ground: str,
    lift_at: datetime | None,
    actor_id: int | None,
) -> list[dict[str, Any]]:
    """Restrict the fields named (all when None) in each of the subject's rows."""
    check_lift_at(lift_at, "lift_at")
    wanted = _subject_fields(subject, field_ids)
    made = []
    for match in subject.matches:
        ids = (
            sorted(row.field_id for row in match.entity.fields) if field_ids else [None]
        )
        ids = [i for i in ids if i is None or i in wanted]
        for row_key in match.row_keys:
            for field_id in ids:
                restrict(
                    match.system.key,
                    match.entity.key,
                    row_key,
                    field_id,
                    ground,
                    lift_at,
                    actor_id,
                )
                made.append(
                    _made(match.system.key, match.entity.key, row_key, field_id)
                )
    audit.record(
        "registry.subject_restricted",
        actor_id=actor_id,
        identity_keys=subject.identity_keys,
        systems=subject.systems,
        fields=sorted(wanted),
        ground=ground,
        lift_at=lift_at.isoformat() if lift_at else None,
    )
    return made


def _made(
    system_key: str, entity_key: str, row_key: dict[str, Any], field_id: str | None
) -> dict[str, Any]:
    return {
        "system": system_key,
        "entity": entity_key,
        "row_key": row_key,
        "field": field_id,
    }


def lift_subject(
    subject: Subject, field_ids: list[str] | None, actor_id: int | None
) -> list[dict[str, Any]]:
    """Lift the restrictions in force on the subject's fields named (all when None)."""
    lifted = []
    for match in subject.matches:
        for row_key in match.row_keys:
            for gone in lift(
                match.system.key, match.entity.key, row_key, field_ids, actor_id
            ):
                lifted.append(
                    _made(match.system.key, match.entity.key, row_key, gone.field_id)
                )
    audit.record(
        "registry.subject_restriction_lifted",
        actor_id=actor_id,
        identity_keys=subject.identity_keys,
        systems=sorted({item["system"] for item in lifted}),
        fields=sorted(
            {item["field"] or f"{item['system']}.{item['entity']}.*" for item in lifted}
        ),
    )
    return lifted
