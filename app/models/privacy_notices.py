"""Privacy notices (Art 13, 14): immutable, content-hashed versions per scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

SCOPE_KINDS = ("purpose", "system")


class PrivacyNotice(db.Model):
    """One version of a scope's notice (`purpose:KEY`, `system:KEY`); never changed."""

    __tablename__ = "privacy_notices"
    __table_args__ = (UniqueConstraint("scope", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(320), index=True)
    version: Mapped[int] = mapped_column(Integer)
    # The notice as drawn from the registry; its SHA-256 decides whether it is new.
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_sha256: Mapped[str] = mapped_column(String(64))
    # Rendered once: what a subject saw stays byte for byte what they are shown later.
    html: Mapped[str] = mapped_column(Text)
    # What the registry lacks for a complete notice (not part of the content).
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    generated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    generated_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
