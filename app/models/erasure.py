"""Restrictions (Art 18) and the erasure ledger (Art 17) over connected systems."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

# Art 17(3): the exceptions that let a controller keep data an erasure asks for.
RETAIN_GROUNDS = {
    "art_17_3_a": "Art 17(3)(a)",
    "art_17_3_b": "Art 17(3)(b)",
    "art_17_3_c": "Art 17(3)(c)",
    "art_17_3_d": "Art 17(3)(d)",
    "art_17_3_e": "Art 17(3)(e)",
}
# Art 18(1)(a)-(d), or an Art 17(3) exception under which data is kept but not used.
RESTRICTION_GROUNDS = {
    "art_18_1_a": "Art 18(1)(a)",
    "art_18_1_b": "Art 18(1)(b)",
    "art_18_1_c": "Art 18(1)(c)",
    "art_18_1_d": "Art 18(1)(d)",
    # An objection upheld: no compelling grounds (21(1)), or direct marketing (21(3)).
    "art_21_1": "Art 21(1)",
    "art_21_3": "Art 21(3)",
    **RETAIN_GROUNDS,
}


class Restriction(db.Model):
    """A field (or every field) of one row that may only be stored, not read."""

    __tablename__ = "restrictions"
    __table_args__ = (Index("ix_restrictions_row", "system_key", "entity_key", "row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    system_key: Mapped[str] = mapped_column(String(60))
    entity_key: Mapped[str] = mapped_column(String(60))
    # The row's primary key as canonical JSON text, compared by equality.
    row: Mapped[str] = mapped_column(String(500))
    # The full field id; None restricts every field of the row.
    field_id: Mapped[str | None] = mapped_column(String(200))
    ground: Mapped[str] = mapped_column(String(20))
    lift_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lifted_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )


class ErasureEntry(db.Model):
    """What one erasure did to one row of one system, without the identity."""

    __tablename__ = "erasure_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The identity kinds and a keyed HMAC of their values: pseudonymous data kept
    # for Art 17 accountability, never the identity itself.
    identity_kinds: Mapped[list[str]] = mapped_column(JSON)
    identity_hmac: Mapped[str] = mapped_column(String(64), index=True)
    system_key: Mapped[str] = mapped_column(String(60))
    entity_key: Mapped[str] = mapped_column(String(60))
    row_key: Mapped[dict[str, Any]] = mapped_column(JSON)
    field_ids: Mapped[list[str]] = mapped_column(JSON)
    # The table and columns acted on, so a replay needs no catalogue entry.
    table_name: Mapped[str | None] = mapped_column(String(120))
    column_names: Mapped[list[str] | None] = mapped_column(JSON)
    # A keyed HMAC of the row's subject-key value before the erasure: a replay
    # acts only on a row that still belongs to the same subject.
    subject_column: Mapped[str | None] = mapped_column(String(120))
    subject_hmac: Mapped[str | None] = mapped_column(String(64))
    # A keyed HMAC of what the erasure left in the columns: a row that still holds
    # it is erased already, so replaying again changes nothing.
    erased_hmac: Mapped[str | None] = mapped_column(String(64))
    # deleted_row, nulled, anonymised, restricted, retained
    outcome: Mapped[str] = mapped_column(String(20))
    ground: Mapped[str | None] = mapped_column(String(20))
    # pending (committed before the system is touched), then applied, or failed
    # when the system's transaction was rolled back.
    status: Mapped[str] = mapped_column(String(10))
    detail: Mapped[str] = mapped_column(Text, default="")
