"""Webhook endpoints and their delivery log, managed by admins."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.integration_schemas import (
    EndpointCreatedSchema,
    EndpointCreateSchema,
    EndpointListSchema,
    EndpointSchema,
    WebhookDeliveryListArgs,
    WebhookDeliveryPageSchema,
    WebhookDeliverySchema,
)
from app.extensions import db
from app.models import WebhookDelivery, WebhookEndpoint
from app.services import webhooks
from app.services.paging import Page

PREFIX = "webhooks"
blp = Blueprint("webhooks", __name__, description="Inbound webhook endpoints.")


@blp.route("/endpoints")
class Endpoints(MethodView):
    @require_roles("admin")
    @blp.response(200, EndpointListSchema)
    def get(self) -> dict[str, Any]:
        """Every endpoint, without its secret."""
        return {"items": webhooks.list_endpoints()}

    @require_roles("admin")
    @blp.arguments(EndpointCreateSchema)
    @blp.response(201, EndpointCreatedSchema)
    def post(self, body: dict[str, Any]) -> WebhookEndpoint:
        """Create an endpoint; its signing secret is shown in this reply only."""
        endpoint = webhooks.create_endpoint(
            body["name"], body["action"], body["mapping"], current_user().id
        )
        db.session.commit()
        return endpoint


@blp.route("/endpoints/<name>")
class EndpointDetail(MethodView):
    @require_roles("admin")
    @blp.response(200, EndpointSchema)
    def get(self, name: str) -> WebhookEndpoint:
        return webhooks.get_endpoint(name)

    @require_roles("admin")
    @blp.response(204)
    def delete(self, name: str) -> None:
        """Stop accepting requests there; the delivery log stays."""
        webhooks.delete_endpoint(name, current_user().id)
        db.session.commit()


@blp.route("/deliveries")
class Deliveries(MethodView):
    @require_roles("admin")
    @blp.arguments(WebhookDeliveryListArgs, location="query")
    @blp.response(200, WebhookDeliveryPageSchema)
    def get(self, args: dict[str, Any]) -> Page:
        """The delivery log, newest first, without bodies."""
        return webhooks.list_deliveries(
            endpoint_name=args.get("endpoint"),
            status=args.get("status"),
            page=args["page"],
            page_size=args["page_size"],
        )


@blp.route("/deliveries/<int:delivery_id>/retry")
class Retry(MethodView):
    @require_roles("admin")
    @blp.response(200, WebhookDeliverySchema)
    def post(self, delivery_id: int) -> WebhookDelivery:
        """Process a failed delivery again; the delivery as it ends up."""
        return webhooks.retry(delivery_id, current_user().id)
