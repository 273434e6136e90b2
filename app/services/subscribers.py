"""Subscribers to outbound events, managed by admins."""

from __future__ import annotations

import logging

from sqlalchemy import select, update

from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import OutboundDelivery, Subscriber
from app.models.integrations import ACTIVE, PAUSED, PENDING
from app.models.types import utcnow
from app.services import audit, signatures
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)


def create_subscriber(
    url: str, event_types: list[str], actor_id: int | None
) -> Subscriber:
    """A new subscriber with a fresh secret; the caller shows the secret once."""
    subscriber = Subscriber(
        url=url,
        event_types=sorted(set(event_types)),
        signing_secret=signatures.new_secret(),
        status=ACTIVE,
        created_by_id=actor_id,
    )
    db.session.add(subscriber)
    db.session.flush()
    audit.record(
        "subscriber.created",
        actor_id=actor_id,
        subscriber_id=subscriber.id,
        event_types=subscriber.event_types,
    )
    logger.info("subscriber %s created", subscriber.id)
    return subscriber


def list_subscribers() -> list[Subscriber]:
    return list(db.session.scalars(select(Subscriber).order_by(Subscriber.id)))


def get_subscriber(subscriber_id: int) -> Subscriber:
    subscriber = db.session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"No subscriber with id {subscriber_id}.")
    return subscriber


def delete_subscriber(subscriber_id: int, actor_id: int | None) -> None:
    """Remove a subscriber with its deliveries; nothing more is sent to it."""
    subscriber = get_subscriber(subscriber_id)
    audit.record("subscriber.deleted", actor_id=actor_id, subscriber_id=subscriber.id)
    db.session.delete(subscriber)


def resume(subscriber_id: int, actor_id: int | None) -> Subscriber:
    """Make a paused subscriber active; what waited for it is due at once."""
    subscriber = get_subscriber(subscriber_id)
    if subscriber.status != PAUSED:
        raise Conflict("Only a paused subscriber can be resumed.", code="not-paused")
    now = utcnow()
    subscriber.status, subscriber.paused_at = ACTIVE, None
    subscriber.consecutive_failures = 0
    db.session.execute(
        update(OutboundDelivery)
        .where(
            OutboundDelivery.subscriber_id == subscriber.id,
            OutboundDelivery.status == PENDING,
        )
        .values(next_attempt_at=now)
    )
    audit.record("subscriber.resumed", actor_id=actor_id, subscriber_id=subscriber.id)
    logger.info("subscriber %s resumed", subscriber.id)
    return subscriber


def deliveries_of(
    subscriber: Subscriber,
    *,
    status: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page:
    """A subscriber's delivery log, newest first."""
    query = select(OutboundDelivery).where(
        OutboundDelivery.subscriber_id == subscriber.id
    )
    if status:
        query = query.where(OutboundDelivery.status == status)
    order = (OutboundDelivery.created_at.desc(), OutboundDelivery.id.desc())
    return paginate(query, order, page, page_size)
