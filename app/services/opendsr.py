"""The OpenDSR data-subject request shape: validated, then turned into instance data."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

REQUEST_TYPES = (
    "access",
    "erasure",
    "portability",
    "rectification",
    "restriction",
    "objection",
)
IDENTITY_FORMATS = ("raw", "sha1", "md5", "sha256")
# What a request's status callbacks say, in OpenDSR's words.
STATUSES = ("pending", "in_progress", "completed", "cancelled")


class SubjectIdentitySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    identity_type = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{0,59}$", error="Not an identity type."
        ),
    )
    identity_value = fields.String(
        required=True, validate=validate.Length(min=1, max=500)
    )
    identity_format = fields.String(
        load_default="raw", validate=validate.OneOf(IDENTITY_FORMATS)
    )


class RequestSchema(Schema):
    """An OpenDSR request; unknown top-level fields (api_version, ...) are ignored."""

    class Meta:
        unknown = EXCLUDE

    request_id = fields.String(validate=validate.Length(min=1, max=255))
    subject_request_type = fields.String(
        required=True, validate=validate.OneOf(REQUEST_TYPES)
    )
    subject_identities = fields.List(
        fields.Nested(SubjectIdentitySchema),
        required=True,
        validate=validate.Length(min=1, max=20),
    )
    submitted_time = fields.AwareDateTime(required=True, format="iso")
    status_callback_urls = fields.List(
        fields.Url(schemes={"http", "https"}, require_tld=False),
        load_default=list,
        validate=validate.Length(max=10),
    )


def load(body: Any) -> dict[str, Any]:
    """The request, validated; ValidationError lists the fields that fail."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["The body is not a JSON object."]})
    return RequestSchema().load(body)


def instance_data(request: dict[str, Any]) -> dict[str, Any]:
    """What the request's process starts with; identities go here and nowhere else."""
    return {
        "request_type": request["subject_request_type"],
        "subject_identities": request["subject_identities"],
        "submitted_at": request["submitted_time"].astimezone(UTC).isoformat(),
        "status_callback_urls": request["status_callback_urls"],
        "request_id": request.get("request_id"),
    }
