"""Consent (Art 7): notices, per-purpose settings, current state and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

ACTIVE, RENEWAL_REQUESTED, WITHDRAWN, LAPSED = (
    "active",
    "renewal_requested",
    "withdrawn",
    "lapsed",
)
STATES = (ACTIVE, RENEWAL_REQUESTED, WITHDRAWN, LAPSED)
GRANTED, RENEWED = "granted", "renewed"
EVENT_KINDS = (GRANTED, RENEWAL_REQUESTED, RENEWED, WITHDRAWN, LAPSED)
CHANNELS = ("web", "app", "email", "paper", "phone", "api")


class ConsentNotice(db.Model):
    """One published version of the notice a subject consents to; never changed."""

    __tablename__ = "consent_notices"
    __table_args__ = (UniqueConstraint("purpose", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    # Whether this version changes what was consented to: then consent is asked again.
    material: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    published_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    # The privacy notice (Art 13) version shown beside this consent text, if any.
    privacy_notice_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("privacy_notices.id")
    )


class ConsentPurpose(db.Model):
    """How often consent to a purpose is renewed, and how long an answer may take."""

    __tablename__ = "consent_purposes"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    renewal_interval: Mapped[str | None] = mapped_column(String(40))
    answer_window: Mapped[str] = mapped_column(String(40), default="P30D")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Consent(db.Model):
    """A subject's consent to one purpose as it stands now; its events are history."""

    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(255), index=True)
    # Needed to demonstrate the consent and to write to the subject (renewal).
    identities: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), index=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("consent_notices.id"))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    renew_by: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    # The renewal request being answered: its round number and answer deadline.
    renewal_round: Mapped[int] = mapped_column(Integer, default=0)
    answer_by: Mapped[datetime | None] = mapped_column(UtcDateTime)
    renewal_instance_id: Mapped[str | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ConsentIdentity(db.Model):
    """A keyed hash of one identity of a consent's subject, to find it by."""

    __tablename__ = "consent_identities"
    __table_args__ = (Index("ix_consent_identities_lookup", "kind", "value_hmac"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    consent_id: Mapped[str] = mapped_column(
        ForeignKey("consents.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(60))
    value_hmac: Mapped[str] = mapped_column(String(64))


class ConsentEvent(db.Model):
    """What happened to a consent, with the notice it concerned; append-only."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    notice_id: Mapped[int] = mapped_column(ForeignKey("consent_notices.id"))
    notice_version: Mapped[int] = mapped_column(Integer)
    notice_sha256: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(20))
    mechanism: Mapped[str] = mapped_column(String(255))
    # A user of the service, or None with `recorded_via` naming the subject or process.
    recorded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    recorded_via: Mapped[str] = mapped_column(String(30))
    age: Mapped[int | None] = mapped_column(Integer)
    parental_authorisation: Mapped[str | None] = mapped_column(Text)


class ImmutableRecord(Exception):
    """A notice or consent event was about to be changed or removed."""


@event.listens_for(ConsentEvent, "before_update")
@event.listens_for(ConsentEvent, "before_delete")
@event.listens_for(ConsentNotice, "before_update")
@event.listens_for(ConsentNotice, "before_delete")
def _refuse_change(mapper: Any, connection: Any, target: Any) -> None:
    # History is evidence under Art 7(1): a new fact is a new row.
    raise ImmutableRecord(f"{type(target).__name__} {target.id} is append-only")
