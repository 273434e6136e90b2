"""GET /api/health: needs no credentials, says whether the database answers."""

from __future__ import annotations

from flask.views import MethodView
from sqlalchemy import text

from app.api.blueprint import Blueprint
from app.api.schemas import HealthSchema
from app.extensions import db

blp = Blueprint("health", __name__, description="Liveness of the service.")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.doc(security=[])
    def get(self) -> dict[str, str]:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return {"status": "ok", "database": "ok"}
