"""The register of data protection impact assessments (Art 35) and consultations."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import PageArgs, PageSchema
from app.models.dpia import STATUSES
from app.roles import OFFICERS
from app.services import dpia
from app.services.paging import Page

PREFIX = "dpias"
blp = Blueprint("dpias", __name__, description="Data protection impact assessments.")

READERS = OFFICERS


class DpiaListArgs(PageArgs):
    purpose = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))


class DpiaSchema(Schema):
    id = fields.Integer()
    reference = fields.String()
    instance_id = fields.String(allow_none=True)
    purpose = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String()
    round = fields.Integer()
    created_at = fields.String()
    processing = fields.Dict(allow_none=True)
    screening = fields.Dict(allow_none=True)
    assessment = fields.Dict(allow_none=True)
    opinion = fields.Dict(allow_none=True)
    decision = fields.Dict(allow_none=True)
    consultation = fields.Dict(allow_none=True)
    authority_deadline = fields.Dict(allow_none=True)
    concluded_at = fields.String(allow_none=True)
    review_due_at = fields.String(allow_none=True)
    history = fields.List(fields.Dict())
    letters = fields.List(fields.Dict())


class DpiaPageSchema(PageSchema):
    items = fields.List(fields.Nested(DpiaSchema))


@blp.route("")
class Dpias(MethodView):
    @require_roles(*READERS)
    @blp.arguments(DpiaListArgs, location="query")
    @blp.response(200, DpiaPageSchema)
    def get(self, args: dict[str, Any]) -> Page:
        """The register, newest first; filter by purpose or status."""
        page = dpia.list_dpias(
            purpose=args.get("purpose"),
            status=args.get("status"),
            page=args["page"],
            size=args["page_size"],
        )
        page.items = [dpia.entry(item) for item in page.items]
        return page


@blp.route("/<int:dpia_id>")
class DpiaDetail(MethodView):
    @require_roles(*READERS)
    @blp.response(200, DpiaSchema)
    def get(self, dpia_id: int) -> dict[str, Any]:
        """One DPIA: screening, risks with levels, opinion, decision, consultation."""
        return dpia.entry(dpia.get_dpia(dpia_id))
