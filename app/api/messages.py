"""Messages: deliver a named message to the one instance that waits for it."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import MessageDeliveredSchema, MessageSchema
from app.extensions import db
from app.services import messages

PREFIX = "messages"
blp = Blueprint("messages", __name__, description="Messages to waiting instances.")


@blp.route("")
class Messages(MethodView):
    @require_roles("dpo", "privacy_officer", "admin")
    @blp.arguments(MessageSchema)
    @blp.response(200, MessageDeliveredSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deliver a message; 404 names it if no instance waits for it."""
        instance = messages.deliver(
            body["name"], body["correlation"], body["payload"], current_user().id
        )
        db.session.commit()
        return {"instance": instance}
