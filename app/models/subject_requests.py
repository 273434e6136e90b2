"""The register of data-subject requests, and direct-marketing suppressions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

REQUEST_TYPES = {
    "access": "Art 15",
    "portability": "Art 20",
    "erasure": "Art 17",
    "rectification": "Art 16",
    "restriction": "Art 18",
    "objection": "Art 21",
}
OPEN, CLOSED = "open", "closed"


class SubjectRequest(db.Model):
    """One request: what was asked, how identity was confirmed, what was decided.

    It names its subject only by a keyed HMAC of the identities, enough to see a
    repeated request (Art 12(5)); the identities live in the instance's data.
    """

    __tablename__ = "subject_requests"
    __table_args__ = (Index("ix_subject_requests_subject", "subject_hmac"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(30), unique=True)
    instance_id: Mapped[str] = mapped_column(
        ForeignKey("instances.id", ondelete="CASCADE"), unique=True
    )
    request_type: Mapped[str] = mapped_column(String(20), index=True)
    channel: Mapped[str] = mapped_column(String(30))
    subject_hmac: Mapped[str] = mapped_column(String(64))
    identity_kinds: Mapped[list[str]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    clock_starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    identity_method: Mapped[str | None] = mapped_column(String(40))
    identity_outcome: Mapped[str | None] = mapped_column(String(20))
    identity_checked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decision: Mapped[str | None] = mapped_column(String(20))
    decision_reasons: Mapped[str | None] = mapped_column(Text)
    extended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    recipient_notices: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(10), default=OPEN, index=True)
    outcome: Mapped[str | None] = mapped_column(String(20))
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_late: Mapped[bool | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Suppression(db.Model):
    """A subject who objected to direct marketing (Art 21(3)): never contact again.

    Only the keyed HMAC of an identity is kept, the least that keeps the
    objection honoured when the same person turns up in a later import.
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("identity_hmac", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    identity_hmac: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(100))
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("subject_requests.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
