"""The OpenDSR data-subject request shape: validated, then turned into instance data."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

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
REQUEST_ID = validate.Length(min=1, max=255)


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

    subject_request_id = fields.String(validate=REQUEST_ID)
    # The name this service read before it followed OpenDSR; still accepted.
    request_id = fields.String(validate=REQUEST_ID)
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

    @post_load
    def _one_request_id(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        legacy = data.pop("request_id", None)
        data.setdefault("subject_request_id", legacy)
        return data


def load(body: Any) -> dict[str, Any]:
    """The request, validated; ValidationError lists the fields that fail."""
    if not isinstance(body, dict):
        raise ValidationError({"_schema": ["The body is not a JSON object."]})
    return RequestSchema().load(body)


def subject_request_id(body: Any) -> str | None:
    """The sender's own id of the request, read before the body is validated."""
    if not isinstance(body, dict):
        return None
    found = body.get("subject_request_id", body.get("request_id"))
    if not isinstance(found, str) or not 1 <= len(found) <= 255:
        return None
    return found


def instance_data(request: dict[str, Any]) -> dict[str, Any]:
    """What the request's process starts with; identities go here and nowhere else."""
    return {
        "request_type": request["subject_request_type"],
        "subject_identities": request["subject_identities"],
        "submitted_at": request["submitted_time"].astimezone(UTC).isoformat(),
        "status_callback_urls": request["status_callback_urls"],
        "subject_request_id": request["subject_request_id"],
    }
