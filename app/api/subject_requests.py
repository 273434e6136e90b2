"""The register of data-subject requests, and the direct-marketing suppression check."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import PageArgs, PageSchema
from app.models.subject_requests import CLOSED, OPEN, REQUEST_TYPES
from app.roles import OFFICERS
from app.services import request_answers, subject_requests

PREFIX = "requests"
blp = Blueprint(
    "subject_requests", __name__, description="Data-subject requests (Art 12-22)."
)


class RequestListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf((OPEN, CLOSED)))
    type = fields.String(validate=validate.OneOf(sorted(REQUEST_TYPES)))


class RecipientNoticeSchema(Schema):
    recipient = fields.String()
    field_ids = fields.List(fields.String(), attribute="fields", data_key="fields")
    notified = fields.Boolean()
    sent_at = fields.String(allow_none=True)
    method = fields.String(allow_none=True)
    proof = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


class SubjectRequestSchema(Schema):
    reference = fields.String()
    instance_id = fields.String()
    type = fields.String(attribute="request_type")
    article = fields.Function(lambda row: REQUEST_TYPES[row.request_type])
    channel = fields.String()
    identity_kinds = fields.List(fields.String())
    received_at = fields.AwareDateTime()
    clock_starts_at = fields.AwareDateTime()
    due_at = fields.AwareDateTime(allow_none=True)
    identity_method = fields.String(allow_none=True)
    identity_outcome = fields.String(allow_none=True)
    identity_checked_at = fields.AwareDateTime(allow_none=True)
    decision = fields.String(allow_none=True)
    extended_at = fields.AwareDateTime(allow_none=True)
    recipient_notices = fields.List(fields.Nested(RecipientNoticeSchema))
    status = fields.String()
    outcome = fields.String(allow_none=True)
    closed_at = fields.AwareDateTime(allow_none=True)
    answered_late = fields.Boolean(allow_none=True)


class SubjectRequestPageSchema(PageSchema):
    items = fields.List(fields.Nested(SubjectRequestSchema))


class SuppressionCheckSchema(Schema):
    identities = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        validate=validate.Length(min=1, max=20),
    )
    purpose = fields.String(load_default=request_answers.DIRECT_MARKETING)


class SuppressionReplySchema(Schema):
    suppressed = fields.Boolean(required=True)
    purpose = fields.String(required=True)


@blp.route("")
class Requests(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(RequestListArgs, location="query")
    @blp.response(200, SubjectRequestPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """The register: every request, soonest Art 12(3) deadline first."""
        return subject_requests.list_requests(
            args.get("status"), args.get("type"), args["page"], args["page_size"]
        )


@blp.route("/<reference>")
class OneRequest(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, SubjectRequestSchema)
    def get(self, reference: str) -> Any:
        """One request: receipt, identity check, decision, notices, outcome."""
        row = subject_requests.get_request(reference)
        return subject_requests.with_due_at(row)


@blp.route("/suppressions/check")
class SuppressionCheck(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(SuppressionCheckSchema)
    @blp.response(200, SuppressionReplySchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Whether a person objected to this purpose (Art 21(3)): ask before mailing."""
        identities = body["identities"]
        purpose = body["purpose"]
        return {
            "suppressed": request_answers.suppressed(identities, purpose),
            "purpose": purpose,
        }
