"""Task forms: JSON Schema documents that user tasks name."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.definitions import DESIGNERS, READERS
from app.api.schemas import FormListSchema, FormSchema, FormUploadSchema
from app.extensions import db
from app.services import forms

PREFIX = "forms"
blp = Blueprint("forms", __name__, description="Task forms (JSON Schema).")


@blp.route("")
class Forms(MethodView):
    @require_roles(*READERS)
    @blp.response(200, FormListSchema)
    def get(self) -> dict[str, Any]:
        """The latest version of every deployed form."""
        return {"items": forms.list_forms()}

    @require_roles(*DESIGNERS)
    @blp.arguments(FormUploadSchema)
    @blp.response(201, FormSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Deploy a task form (a JSON Schema with "type": "object")."""
        version = forms.deploy_form(body["name"], body["schema"], current_user().id)
        db.session.commit()
        return version


@blp.route("/<name>")
class Form(MethodView):
    @require_roles(*READERS)
    @blp.response(200, FormSchema)
    def get(self, name: str) -> Any:
        """The latest version of one form."""
        return forms.get_form(name)
