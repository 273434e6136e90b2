"""Deadlines: the table is the truth, the scheduler only its alarm clock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

KINDS = ("legal", "internal_target", "reminder", "escalation", "bpmn_timer")
PENDING, FIRED, CANCELLED, MET = "pending", "fired", "cancelled", "met"
STATES = (PENDING, FIRED, CANCELLED, MET)
# What firing does: wake the instance's timers, or tell people.
WAKE, REMIND, ESCALATE = "wake", "remind", "escalate"


class Deadline(db.Model):
    __tablename__ = "deadlines"
    __table_args__ = (
        Index("ix_deadlines_due", "state", "due_at"),
        Index("ix_deadlines_instance_name", "instance_id", "name"),
        Index("ix_deadlines_retry", "state", "retry_at"),
        # One instance's pending timers, read on every save that waits on one.
        Index("ix_deadlines_instance_kind", "instance_id", "kind", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(20))
    role: Mapped[str | None] = mapped_column(String(40))
    task_guid: Mapped[str | None] = mapped_column(String(36))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
