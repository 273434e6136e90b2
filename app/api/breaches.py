"""The personal-data breach register (Art 33(5)): list, read, export for inspection."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import PageArgs, PageSchema
from app.extensions import db
from app.models.breaches import STATUSES
from app.roles import OFFICERS
from app.services import audit, breaches
from app.services.paging import Page

PREFIX = "breaches"
blp = Blueprint("breaches", __name__, description="The personal-data breach register.")

READERS = OFFICERS


class BreachListArgs(PageArgs):
    order = fields.String(
        load_default="newest", validate=validate.OneOf(("newest", "due"))
    )
    status = fields.String(validate=validate.OneOf(STATUSES))


class BreachSchema(Schema):
    id = fields.Integer()
    reference = fields.String()
    instance_id = fields.String(allow_none=True)
    status = fields.String()
    summary = fields.String()
    detected_by = fields.String()
    aware_at = fields.String()
    registered_at = fields.String()
    authority_due_at = fields.String()
    assessment = fields.Dict(allow_none=True)
    outcome = fields.String(allow_none=True)
    no_notification_reason = fields.String(allow_none=True)
    assessed_at = fields.String(allow_none=True)
    notification_required = fields.Dict(allow_none=True)
    authority_notification = fields.Dict(allow_none=True)
    notified_at = fields.String(allow_none=True)
    notified_late = fields.Boolean(allow_none=True)
    delay_reasons = fields.String(allow_none=True)
    phases = fields.List(fields.Dict())
    phases_completed_at = fields.String(allow_none=True)
    subject_communication = fields.Dict(allow_none=True)
    communicated_at = fields.String(allow_none=True)
    exemption = fields.String(allow_none=True)
    exemption_evidence = fields.String(allow_none=True)
    letters = fields.List(fields.Dict())
    closed_at = fields.String(allow_none=True)


class BreachPageSchema(PageSchema):
    items = fields.List(fields.Nested(BreachSchema))


@blp.route("")
class Breaches(MethodView):
    @require_roles(*READERS)
    @blp.arguments(BreachListArgs, location="query")
    @blp.response(200, BreachPageSchema)
    def get(self, args: dict[str, Any]) -> Page:
        """The register, newest first (`order=newest`) or soonest due (`order=due`)."""
        page = breaches.list_breaches(
            order=args["order"],
            status=args.get("status"),
            page=args["page"],
            size=args["page_size"],
        )
        page.items = [breaches.entry(breach) for breach in page.items]
        return page


@blp.route("/<int:breach_id>")
class BreachDetail(MethodView):
    @require_roles(*READERS)
    @blp.response(200, BreachSchema)
    def get(self, breach_id: int) -> dict[str, Any]:
        """One register entry: assessment, decision, phases, notification times."""
        return breaches.entry(breaches.get_breach(breach_id))


@blp.route("/export.csv")
class BreachExport(MethodView):
    @require_roles(*READERS)
    @blp.response(200, content_type="text/csv")
    def get(self) -> Response:
        """Every breach, notified or not, one row each, as CSV for an inspection."""
        body = breaches.export_csv()
        audit.record("breach.register_exported", actor_id=current_user().id)
        db.session.commit()
        return Response(
            body,
            mimetype="text/csv",
            headers={"Content-Disposition": 'attachment; filename="breaches.csv"'},
        )
