"""Deadlines: what is due across all instances, soonest first."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import DeadlineListArgs, DeadlinePageSchema
from app.roles import OFFICERS
from app.services import deadlines

PREFIX = "deadlines"
blp = Blueprint("deadlines", __name__, description="Legal deadlines and timers.")


@blp.route("")
class Deadlines(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(DeadlineListArgs, location="query")
    @blp.response(200, DeadlinePageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Pending deadlines of every instance, soonest due first."""
        return deadlines.pending(
            kind=args.get("kind"),
            before=args.get("before"),
            page=args["page"],
            page_size=args["page_size"],
        )
