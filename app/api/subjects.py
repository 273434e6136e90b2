"""Data subjects across the connected systems: locate, export, access report."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app.api.auth import current_user, require_roles
from app.extensions import db
from app.services import subjects
from app.services.registry_schemas import KEY

PREFIX = "registry/subjects"
blp = Blueprint(
    "subjects", __name__, description="A data subject's rows in the mapped systems."
)

OFFICERS = ("dpo", "privacy_officer")
ZIP_REPLY = {
    "200": {
        "description": "JSON (data and manifest), or a zip of CSV files and "
        "manifest.json",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


class IdentitiesSchema(Schema):
    """How the subject is known: subject keys or identifier kinds, to values."""

    identities = fields.Dict(
        keys=fields.String(validate=KEY),
        values=fields.String(validate=validate.Length(1, 320)),
        required=True,
        validate=validate.Length(min=1, error="Name at least one identity."),
    )


class ExportSchema(IdentitiesSchema):
    format = fields.String(
        load_default="json", validate=validate.OneOf(("json", "csv"))
    )


@blp.route("/locate")
class Locate(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(IdentitiesSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """The systems and entities holding the subject's rows, by row key only."""
        subject = subjects.find(body["identities"])
        subjects.record("registry.subject_located", subject, None, current_user().id)
        db.session.commit()
        return jsonify(subjects.located(subject))


@blp.route("/export")
class Export(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(ExportSchema)
    @blp.doc(responses=ZIP_REPLY)
    def post(self, body: dict[str, Any]) -> Response:
        """Every mapped field of the subject's rows, with a JSON Schema manifest."""
        subject = subjects.find(body["identities"])
        if body["format"] == "csv":
            archive, copy = subjects.export_zip(subject)
            reply = Response(archive, mimetype="application/zip")
            reply.headers["Content-Disposition"] = (
                'attachment; filename="personal-data.zip"'
            )
        else:
            document, copy = subjects.export_document(subject)
            reply = jsonify(document)
        subjects.record(
            "registry.subject_exported",
            subject,
            copy,
            current_user().id,
            format=body["format"],
        )
        db.session.commit()
        return reply


@blp.route("/access-report")
class AccessReport(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(IdentitiesSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Art 15(1)(a)-(h) for every field found, with the copy of the data."""
        subject = subjects.find(body["identities"])
        report, copy = subjects.access_report(subject)
        subjects.record(
            "registry.subject_access_report", subject, copy, current_user().id
        )
        db.session.commit()
        return jsonify(report)
