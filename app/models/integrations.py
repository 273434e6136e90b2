"""Webhooks received from outside, and events sent to subscribers (an outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

START_PROCESS, DELIVER_MESSAGE, OPENDSR = "start_process", "deliver_message", "opendsr"
WEBHOOK_ACTIONS = (START_PROCESS, DELIVER_MESSAGE, OPENDSR)

RECEIVED, PROCESSED, FAILED, REJECTED = "received", "processed", "failed", "rejected"
WEBHOOK_DELIVERY_STATUSES = (RECEIVED, PROCESSED, FAILED, REJECTED)

ACTIVE, PAUSED = "active", "paused"
SUBSCRIBER_STATUSES = (ACTIVE, PAUSED)

PENDING, SENDING, SENT, GAVE_UP = "pending", "sending", "sent", "failed"
OUTBOUND_STATUSES = (PENDING, SENDING, SENT, GAVE_UP)


class WebhookEndpoint(db.Model):
    """Where signed requests arrive, and what a verified request does."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    # Kept in the clear on purpose: verifying an HMAC needs the secret itself.
    signing_secret: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WebhookDelivery(db.Model):
    """One request to /webhooks/<name>, stored before it is answered."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "idempotency_key"),
        Index("ix_webhook_deliveries_log", "endpoint_name", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="SET NULL")
    )
    endpoint_name: Mapped[str] = mapped_column(String(80))
    received_at: Mapped[datetime] = mapped_column(
        UtcDateTime, default=utcnow, index=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    # Only a verified request's bytes are kept, and only until they are processed.
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    instance_id: Mapped[str | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL"), index=True
    )
    error_code: Mapped[str | None] = mapped_column(String(60))
    error: Mapped[str | None] = mapped_column(String(500))
    reply_status: Mapped[int | None] = mapped_column()
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Subscriber(db.Model):
    """A URL that receives signed events of the types it asked for."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    signing_secret: Mapped[str] = mapped_column(String(100))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default=ACTIVE, index=True)
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    paused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class OutboundEvent(db.Model):
    """Something that happened, written in the transaction that made it happen."""

    __tablename__ = "outbound_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(60), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class OutboundDelivery(db.Model):
    """One event on its way to one URL: a subscriber's, or a request's callback."""

    __tablename__ = "outbound_deliveries"
    __table_args__ = (Index("ix_outbound_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(
        ForeignKey("outbound_events.id", ondelete="CASCADE"), index=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    # A status callback is signed with the secret of the endpoint its request used.
    webhook_endpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="SET NULL")
    )
    url: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_status_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    event: Mapped[OutboundEvent] = relationship()
