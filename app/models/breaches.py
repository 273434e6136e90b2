"""The personal-data breach register (Art 33(5)): every breach, notified or not."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

# What the risk assessment may conclude, and what each outcome obliges.
NO_RISK, RISK, HIGH_RISK = "no_risk", "risk", "high_risk"
OUTCOMES = (NO_RISK, RISK, HIGH_RISK)

# Art 34(3): when a high-risk breach need not be communicated to the subjects.
EXEMPTIONS = {
    "a": "Art 34(3)(a): the data was unintelligible to anyone not authorised",
    "b": "Art 34(3)(b): later measures removed the high risk",
    "c": "Art 34(3)(c): individual communication would be disproportionate",
}

REGISTERED, ASSESSED, NOT_NOTIFIED = "registered", "assessed", "not_notified"
NOTIFIED, CLOSED = "notified", "closed"
STATUSES = (REGISTERED, ASSESSED, NOT_NOTIFIED, NOTIFIED, CLOSED)


class Breach(db.Model):
    """One breach: facts, counts, categories and decisions, never the subjects' data."""

    __tablename__ = "breaches"
    __table_args__ = (
        Index("ix_breaches_registered", "registered_at"),
        Index("ix_breaches_authority_due", "authority_due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    instance_id: Mapped[str | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default=REGISTERED)
    summary: Mapped[str] = mapped_column(Text)
    detected_by: Mapped[str] = mapped_column(String(200), default="")
    aware_at: Mapped[datetime] = mapped_column(UtcDateTime)
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Art 33(1): awareness plus 72 wall-clock hours.
    authority_due_at: Mapped[datetime] = mapped_column(UtcDateTime)

    assessment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    outcome: Mapped[str | None] = mapped_column(String(20))
    no_notification_reason: Mapped[str | None] = mapped_column(Text)
    assessed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # Art 33(3) contents as filed with the supervisory authority.
    authority_notification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    notified_late: Mapped[bool | None] = mapped_column()
    delay_reasons: Mapped[str | None] = mapped_column(Text)
    # Art 33(4): further information in phases, each appended, none rewritten.
    phases: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    phases_completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # Art 34: the communication to the subjects, or the exemption relied on.
    subject_communication: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    communicated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    exemption: Mapped[str | None] = mapped_column(String(1))
    exemption_evidence: Mapped[str | None] = mapped_column(Text)

    letters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
