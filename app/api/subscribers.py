"""Subscribers to outbound events, their delivery logs, and the dispatch command."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.integration_schemas import (
    OutboundDeliveryListArgs,
    OutboundDeliveryPageSchema,
    SubscriberCreatedSchema,
    SubscriberCreateSchema,
    SubscriberListSchema,
    SubscriberSchema,
)
from app.extensions import db
from app.models import Subscriber
from app.services import subscribers
from app.services.paging import Page

PREFIX = "subscribers"
blp = Blueprint(
    "subscribers",
    __name__,
    description="Receivers of signed outbound events.",
    cli_group="events",
)


@blp.route("")
class Subscribers(MethodView):
    @require_roles("admin")
    @blp.response(200, SubscriberListSchema)
    def get(self) -> dict[str, Any]:
        """Every subscriber, without its secret."""
        return {"items": subscribers.list_subscribers()}

    @require_roles("admin")
    @blp.arguments(SubscriberCreateSchema)
    @blp.response(201, SubscriberCreatedSchema)
    def post(self, body: dict[str, Any]) -> Subscriber:
        """Subscribe a URL; its signing secret is shown in this reply only."""
        subscriber = subscribers.create_subscriber(
            body["url"], body["event_types"], current_user().id
        )
        db.session.commit()
        return subscriber


@blp.route("/<int:subscriber_id>")
class SubscriberDetail(MethodView):
    @require_roles("admin")
    @blp.response(200, SubscriberSchema)
    def get(self, subscriber_id: int) -> Subscriber:
        return subscribers.get_subscriber(subscriber_id)

    @require_roles("admin")
    @blp.response(204)
    def delete(self, subscriber_id: int) -> None:
        """Remove a subscriber and its pending deliveries."""
        subscribers.delete_subscriber(subscriber_id, current_user().id)
        db.session.commit()


@blp.route("/<int:subscriber_id>/deliveries")
class SubscriberDeliveries(MethodView):
    @require_roles("admin")
    @blp.arguments(OutboundDeliveryListArgs, location="query")
    @blp.response(200, OutboundDeliveryPageSchema)
    def get(self, args: dict[str, Any], subscriber_id: int) -> Page:
        """The subscriber's delivery log, newest first."""
        return subscribers.deliveries_of(
            subscribers.get_subscriber(subscriber_id),
            status=args.get("status"),
            page=args["page"],
            page_size=args["page_size"],
        )


@blp.route("/<int:subscriber_id>/resume")
class Resume(MethodView):
    @require_roles("admin")
    @blp.response(200, SubscriberSchema)
    def post(self, subscriber_id: int) -> Subscriber:
        """Activate a paused subscriber; what waited for it is due at once."""
        subscriber = subscribers.resume(subscriber_id, current_user().id)
        db.session.commit()
        return subscriber
