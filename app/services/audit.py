"""Append audit events to the hash chain, and verify the chain."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text

from app.extensions import db
from app.models import AuditEvent
from app.models.types import utcnow

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
HEAD = "audit_chain_head"
HEAD_SET_IN = "audit_chain_head_transaction"
# One chain means one writer at a time; PostgreSQL serializes appends on this lock.
CHAIN_LOCK = 7_338_001


def record(
    action: str,
    *,
    actor_id: int | None = None,
    instance_id: str | None = None,
    task_guid: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Append one event; details name ids and field names, never personal values."""
    prev = db.session.info.get(HEAD)
    if prev is None:
        lock_chain()
        prev = db.session.scalar(
            select(AuditEvent.sha256).order_by(AuditEvent.id.desc()).limit(1)
        )
    event = AuditEvent(
        occurred_at=utcnow(),
        action=action,
        actor_id=actor_id,
        instance_id=instance_id,
        task_guid=task_guid,
        details=details,
        prev_sha256=prev or GENESIS,
    )
    event.sha256 = digest(event)
    db.session.add(event)
    # Rows of one table are inserted in the order they were added: ids follow the chain.
    db.session.info[HEAD] = event.sha256
    db.session.info[HEAD_SET_IN] = id(_innermost(db.session))
    return event


def record_denial(
    denial: dict[str, Any], actor_id: int | None, method: str, path: str
) -> None:
    """Keep a refused access in the trail: who, which request, which task."""
    details = dict(denial)
    record(
        "access.denied",
        actor_id=actor_id,
        instance_id=details.pop("instance_id", None),
        task_guid=details.pop("task_guid", None),
        method=method,
        path=path,
        **details,
    )


def _innermost(session: Any) -> Any:
    session = session() if callable(session) else session
    return session.get_nested_transaction() or session.get_transaction()


def forget_head(session: Any, transaction: Any) -> None:
    """The (sub)transaction that moved the head ended: read the head again next time."""
    # A savepoint that appended nothing leaves the head as it was; one that did
    # may be rolled back, so the head is read from the database afresh.
    if transaction.parent is None or session.info.get(HEAD_SET_IN) == id(transaction):
        session.info.pop(HEAD, None)
        session.info.pop(HEAD_SET_IN, None)


def lock_chain() -> None:
    """Wait for the chain (PostgreSQL): held until this transaction ends."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK}
        )


def digest(event: AuditEvent) -> str:
    material = json.dumps(
        [
            event.prev_sha256,
            event.occurred_at.isoformat(),
            event.action,
            event.actor_id,
            event.instance_id,
            event.task_guid,
            event.details,
        ],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str | None = None
    head_id: int | None = None
    head_sha256: str | None = None

    @property
    def head(self) -> str | None:
        """The newest event as `ID:SHA256`, the anchor to keep outside the database."""
        if self.head_id is None:
            return None
        return f"{self.head_id}:{self.head_sha256}"


@dataclass(frozen=True)
class Anchor:
    """A head recorded earlier: the chain must still reach it, unchanged."""

    event_id: int
    sha256: str

    @classmethod
    def parse(cls, value: str) -> Anchor:
        event_id, _, sha256 = value.partition(":")
        if not event_id.isdigit() or len(sha256) != 64:
            raise ValueError(f"an anchor is ID:SHA256 as verify prints it: {value!r}")
        return cls(int(event_id), sha256.lower())


def verify(batch: int = 5000, anchors: tuple[Anchor, ...] = ()) -> ChainReport:
    """Walk the chain from the start; report the first event that does not fit.

    The links show an event changed or removed inside the chain. Removing the
    newest events leaves a shorter chain that still fits, so heads printed by
    earlier runs and kept elsewhere are checked as anchors: each must still be
    in the chain with the same hash.
    """
    expected = {anchor.event_id: anchor.sha256 for anchor in anchors}
    prev, checked, last_id = GENESIS, 0, 0
    while True:
        rows = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.id > last_id)
            .order_by(AuditEvent.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            if event.prev_sha256 != prev:
                return ChainReport(False, checked, event.id, "link to previous broken")
            if digest(event) != event.sha256:
                return ChainReport(False, checked, event.id, "content altered")
            if expected.pop(event.id, event.sha256) != event.sha256:
                return ChainReport(False, checked, event.id, "differs from its anchor")
            prev, last_id, checked = event.sha256, event.id, checked + 1
        db.session.expunge_all()
    if expected:
        missing = min(expected)
        return ChainReport(False, checked, missing, "anchored event removed")
    return ChainReport(True, checked, head_id=last_id or None, head_sha256=prev)


def events_for_instance(instance_id: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.instance_id == instance_id)
            .order_by(AuditEvent.id)
        )
    )
