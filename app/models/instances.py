"""Instances and the read models written in the same transaction as their state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.definitions import DefinitionVersion
from app.models.types import UtcDateTime, utcnow

RUNNING, COMPLETED, ERROR, CANCELLED = "running", "completed", "error", "cancelled"
INSTANCE_STATUSES = (RUNNING, COMPLETED, ERROR, CANCELLED)
TASK_READY, TASK_COMPLETED, TASK_CANCELLED = "ready", "completed", "cancelled"


class Instance(db.Model):
    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    definition_version_id: Mapped[int] = mapped_column(
        ForeignKey("definition_versions.id"), index=True
    )
    bpmn_process_id: Mapped[str] = mapped_column(String(255), index=True)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    state_format: Mapped[str] = mapped_column(String(20))
    version: Mapped[int] = mapped_column(default=1)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utcnow, index=True
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    definition_version: Mapped[DefinitionVersion] = relationship()

    # Every write checks and bumps the counter: a stale writer fails, never wins.
    __mapper_args__ = {"version_id_col": version}


class HumanTask(db.Model):
    __tablename__ = "human_tasks"
    __table_args__ = (
        # The inbox's order, whole: a page is read from the index and stops.
        Index(
            "ix_human_tasks_queue",
            "role",
            "status",
            "due_at",
            "created_at",
            "task_guid",
        ),
    )

    task_guid: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    bpmn_process_id: Mapped[str] = mapped_column(String(255))
    bpmn_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(40))
    form_name: Mapped[str | None] = mapped_column(String(120))
    form_version_id: Mapped[int | None] = mapped_column(ForeignKey("form_versions.id"))
    purpose: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(20))
    claimed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    completed_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Subscription(db.Model):
    """What an instance waits for: a message (by correlation), a timer, a signal."""

    __tablename__ = "subscriptions"
    __table_args__ = (Index("ix_subscriptions_timer", "kind", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    task_guid: Mapped[str] = mapped_column(String(36))
    bpmn_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(255))
    correlation_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    correlations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
