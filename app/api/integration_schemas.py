"""Schemas of the webhook and subscriber APIs."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from app.api.schemas import PageArgs, PageSchema
from app.models.integrations import (
    DELIVER_MESSAGE,
    OPENDSR,
    OUTBOUND_STATUSES,
    START_PROCESS,
    WEBHOOK_ACTIONS,
    WEBHOOK_DELIVERY_STATUSES,
)
from app.services import events
from app.services.events import EVENT_TYPES
from app.services.opendsr import REQUEST_TYPES

BODY_PATH = validate.Regexp(
    r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", error="A field name, or a dotted path."
)
DATA_NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$", error="Not a variable name.")
MAPPING_FIELDS = {
    START_PROCESS: ("process_id", "data_fields", "business_key_field"),
    DELIVER_MESSAGE: ("message_name", "correlation_fields", "payload_fields"),
    OPENDSR: ("request_processes",),
}
REQUIRED = {
    START_PROCESS: ("process_id",),
    DELIVER_MESSAGE: ("message_name", "correlation_fields"),
    OPENDSR: ("request_processes",),
}


def _path_map(**kwargs: Any) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=DATA_NAME),
        values=fields.String(validate=BODY_PATH),
        **kwargs,
    )


class EndpointCreateSchema(Schema):
    """An endpoint: its name, its action, and the action's mapping from the body."""

    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z0-9][a-z0-9_-]{0,79}$",
            error="1-80 lower-case letters, digits, _ or -",
        ),
    )
    action = fields.String(required=True, validate=validate.OneOf(WEBHOOK_ACTIONS))
    process_id = fields.String(validate=validate.Length(min=1, max=255))
    data_fields = _path_map()
    business_key_field = fields.String(validate=BODY_PATH)
    message_name = fields.String(validate=validate.Length(min=1, max=255))
    correlation_fields = _path_map(validate=validate.Length(min=1))
    payload_fields = _path_map()
    request_processes = fields.Dict(
        keys=fields.String(validate=validate.OneOf(REQUEST_TYPES)),
        values=fields.String(validate=validate.Length(min=1, max=255)),
        validate=validate.Length(min=1),
    )

    @validates_schema
    def _fits_the_action(self, data: dict[str, Any], **_: Any) -> None:
        action = data.get("action")
        if action not in MAPPING_FIELDS:
            return
        errors = {
            name: [f"Required by the action '{action}'."]
            for name in REQUIRED[action]
            if name not in data
        }
        foreign = set(data) - {"name", "action", *MAPPING_FIELDS[action]}
        errors.update(
            {name: [f"Not used by the action '{action}'."] for name in foreign}
        )
        if errors:
            raise ValidationError(errors)

    @post_load
    def _split(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        mapping = {
            key: value for key, value in data.items() if key not in ("name", "action")
        }
        return {"name": data["name"], "action": data["action"], "mapping": mapping}


class EndpointSchema(Schema):
    name = fields.String()
    action = fields.String()
    url = fields.Function(lambda endpoint: f"/webhooks/{endpoint.name}")
    process_id = fields.String(attribute="mapping.process_id")
    data_fields = fields.Dict(attribute="mapping.data_fields")
    business_key_field = fields.String(attribute="mapping.business_key_field")
    message_name = fields.String(attribute="mapping.message_name")
    correlation_fields = fields.Dict(attribute="mapping.correlation_fields")
    payload_fields = fields.Dict(attribute="mapping.payload_fields")
    request_processes = fields.Dict(attribute="mapping.request_processes")
    created_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class EndpointCreatedSchema(EndpointSchema):
    secret = fields.String(
        attribute="signing_secret",
        metadata={"description": "Shown in this reply only."},
    )


class EndpointListSchema(Schema):
    items = fields.List(fields.Nested(EndpointSchema))


class WebhookDeliverySchema(Schema):
    id = fields.Integer()
    endpoint = fields.String(attribute="endpoint_name")
    received_at = fields.DateTime()
    idempotency_key = fields.String(allow_none=True)
    status = fields.String()
    attempts = fields.Integer()
    instance_id = fields.String(allow_none=True)
    reply_status = fields.Integer(allow_none=True)
    error_code = fields.String(allow_none=True)
    error = fields.String(allow_none=True)
    processed_at = fields.DateTime(allow_none=True)


class WebhookDeliveryListArgs(PageArgs):
    endpoint = fields.String()
    status = fields.String(validate=validate.OneOf(WEBHOOK_DELIVERY_STATUSES))


class WebhookDeliveryPageSchema(PageSchema):
    items = fields.List(fields.Nested(WebhookDeliverySchema))


class WebhookAcceptedSchema(Schema):
    delivery_id = fields.Integer()
    status = fields.String()
    instance_id = fields.String()


def _no_credentials(url: str) -> None:
    if urlsplit(url).username is not None:
        raise ValidationError("Put no credentials in the URL: requests are signed.")


def _allowed_destination(url: str) -> None:
    reason = events.refusal(url)
    if reason is not None:
        raise ValidationError(reason)


class SubscriberCreateSchema(Schema):
    url = fields.Url(
        required=True,
        schemes={"http", "https"},
        require_tld=False,
        validate=[validate.Length(max=2000), _no_credentials, _allowed_destination],
    )
    event_types = fields.List(
        fields.String(validate=validate.OneOf((*EVENT_TYPES, "*"))),
        required=True,
        validate=validate.Length(min=1),
    )


class SubscriberSchema(Schema):
    id = fields.Integer()
    url = fields.String()
    event_types = fields.List(fields.String())
    status = fields.String()
    consecutive_failures = fields.Integer()
    paused_at = fields.DateTime(allow_none=True)
    created_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


class SubscriberCreatedSchema(SubscriberSchema):
    secret = fields.String(
        attribute="signing_secret",
        metadata={"description": "Shown in this reply only."},
    )


class SubscriberListSchema(Schema):
    items = fields.List(fields.Nested(SubscriberSchema))


class OutboundDeliverySchema(Schema):
    id = fields.Integer()
    event_id = fields.String()
    event_type = fields.String(attribute="event.event_type")
    status = fields.String()
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
    last_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class OutboundDeliveryListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(OUTBOUND_STATUSES))


class OutboundDeliveryPageSchema(PageSchema):
    items = fields.List(fields.Nested(OutboundDeliverySchema))
