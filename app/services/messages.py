"""Deliver a named message to the one instance that waits for it."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from app.engine import NotWaiting
from app.engine.runtime import correlation_hash
from app.errors import Conflict, NotFound
from app.extensions import db
from app.models import Instance, Subscription
from app.services import audit, instances

logger = logging.getLogger(__name__)


def _not_waiting(name: str, correlation: dict[str, Any]) -> NotFound:
    # Keys only: correlation values are often personal (an e-mail, a case number).
    return NotFound(
        f"No instance waits for the message '{name}' with those correlation values.",
        code="no-waiting-instance",
        message_name=name,
        correlation_keys=sorted(correlation),
    )


def deliver(
    name: str,
    correlation: dict[str, Any],
    payload: dict[str, Any],
    actor_id: int | None,
) -> Instance:
    """Find the waiting instance through the subscription index, never a scan."""
    key = correlation_hash(name, correlation)
    subscriptions = _subscriptions(key)
    if not subscriptions:
        raise _not_waiting(name, correlation)
    if len({sub.instance_id for sub in subscriptions}) > 1:
        raise Conflict(
            f"Several instances wait for the message '{name}' with those values.",
            code="ambiguous-correlation",
            message_name=name,
            correlation_keys=sorted(correlation),
        )
    instance = instances.lock_instance(subscriptions[0].instance_id)
    subscriptions = _subscriptions(key)
    if not subscriptions:
        raise _not_waiting(name, correlation)
    running = instances.load(instance)

    def step() -> None:
        running.deliver_message(name, subscriptions[0].correlations, payload)

    try:
        instances.run_and_save(instance, running, actor_id, step)
    except NotWaiting:
        raise _not_waiting(name, correlation) from None
    audit.record(
        "message.delivered",
        actor_id=actor_id,
        instance_id=instance.id,
        message_name=name,
        correlation_keys=sorted(correlation),
        payload_fields=sorted(payload),
    )
    logger.info("message %s delivered to instance %s", name, instance.id)
    return instance


def _subscriptions(key: str) -> list[Subscription]:
    return list(
        db.session.scalars(
            select(Subscription)
            .where(Subscription.correlation_sha256 == key)
            .execution_options(populate_existing=True)
        )
    )
