"""Retention enforcement (Art 5(1)(e)): sweeps, their reports, and legal holds."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.extensions import db
from app.roles import OFFICERS
from app.services import retention

PREFIX = "retention"
blp = Blueprint(
    "retention", __name__, description="Retention sweeps, reports and legal holds."
)

READERS = OFFICERS
STARTERS = ("dpo", "admin")


class RunSchema(Schema):
    id = fields.Integer()
    instance_id = fields.String(allow_none=True)
    status = fields.String()
    started_at = fields.String()
    finished_at = fields.String(allow_none=True)
    plan = fields.Dict()
    outcome = fields.Dict()
    counts = fields.Dict()
    held = fields.List(fields.Dict())
    findings = fields.List(fields.Dict())
    reviewed_by = fields.Integer(allow_none=True)
    review_comment = fields.String(allow_none=True)


class RunListSchema(Schema):
    items = fields.List(fields.Nested(RunSchema))


class SweepStartedSchema(Schema):
    instance_id = fields.String()


class HoldArgs(Schema):
    system = fields.String(required=True, validate=validate.Length(1, 60))
    entity = fields.String(required=True, validate=validate.Length(1, 60))
    row_key = fields.Dict(keys=fields.String(), load_default=None, allow_none=True)
    reason = fields.String(required=True, validate=validate.Length(1, 2000))
    until = fields.AwareDateTime(load_default=None, allow_none=True)


class HoldSchema(Schema):
    id = fields.Integer()
    system = fields.String()
    entity = fields.String()
    row_key = fields.Dict(allow_none=True)
    reason = fields.String()
    until = fields.String(allow_none=True)
    created_at = fields.String()


class HoldListSchema(Schema):
    items = fields.List(fields.Nested(HoldSchema))


@blp.route("/sweeps")
class Sweeps(MethodView):
    @require_roles(*STARTERS)
    @blp.response(201, SweepStartedSchema)
    def post(self) -> dict[str, Any]:
        """Start a sweep now; 409 while another is still running."""
        instance = retention.start_sweep(current_user().id)
        db.session.commit()
        return {"instance_id": instance.id}


@blp.route("/runs")
class Runs(MethodView):
    @require_roles(*READERS)
    @blp.response(200, RunListSchema)
    def get(self) -> dict[str, Any]:
        """Every sweep's report, newest first."""
        return {"items": [retention.report(run) for run in retention.list_runs()]}


@blp.route("/runs/<int:run_id>")
class RunDetail(MethodView):
    @require_roles(*READERS)
    @blp.response(200, RunSchema)
    def get(self, run_id: int) -> dict[str, Any]:
        """One sweep's report: found, done, held and why, failures and findings."""
        return retention.report(retention.get_run(run_id))


@blp.route("/holds")
class Holds(MethodView):
    @require_roles(*READERS)
    @blp.response(200, HoldListSchema)
    def get(self) -> dict[str, Any]:
        """The legal holds in force."""
        return {"items": [retention.described_hold(h) for h in retention.list_holds()]}

    @require_roles(*STARTERS)
    @blp.arguments(HoldArgs)
    @blp.response(201, HoldSchema)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Hold one row (or, without row_key, every row) of an entity from sweeps."""
        hold = retention.place_hold(
            args["system"],
            args["entity"],
            args["row_key"],
            args["reason"],
            args["until"],
            current_user().id,
        )
        db.session.commit()
        return retention.described_hold(hold)


@blp.route("/holds/<int:hold_id>")
class HoldDetail(MethodView):
    @require_roles(*STARTERS)
    @blp.response(204)
    def delete(self, hold_id: int) -> None:
        """Release a hold; it stays on record."""
        retention.release_hold(hold_id, current_user().id)
        db.session.commit()
