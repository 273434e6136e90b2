"""Retention enforcement (Art 5(1)(e)): legal holds, sweep runs and what they did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

RUN_STATUSES = ("planned", "awaiting_review", "applied", "rejected", "empty")


class LegalHold(db.Model):
    """Rows of an entity (one row, or all when `row` is None) no sweep may touch."""

    __tablename__ = "legal_holds"
    __table_args__ = (Index("ix_legal_holds_entity", "system_key", "entity_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    system_key: Mapped[str] = mapped_column(String(60))
    entity_key: Mapped[str] = mapped_column(String(60))
    # The row's primary key as canonical JSON text; None holds every row.
    row: Mapped[str | None] = mapped_column(String(500))
    reason: Mapped[str] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    released_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class RetentionRun(db.Model):
    """One sweep: its plan (row keys, never values) and the outcome per system."""

    __tablename__ = "retention_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(20), default="planned")
    plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # System key to {"status": applied|failed|rejected, "counts": ..., "detail"}.
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    reviewed_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    review_comment: Mapped[str | None] = mapped_column(Text)


class RetentionApplied(db.Model):
    """A retention outcome carried out on one row, so no later sweep repeats it."""

    __tablename__ = "retention_applied"
    __table_args__ = (
        Index("ix_retention_applied_row", "system_key", "entity_key", "row"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("retention_runs.id", ondelete="CASCADE")
    )
    system_key: Mapped[str] = mapped_column(String(60))
    entity_key: Mapped[str] = mapped_column(String(60))
    row: Mapped[str] = mapped_column(String(500))
    field_id: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(20))
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
