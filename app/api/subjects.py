"""Data subjects across the connected systems: locate, export, restrict, erase."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.extensions import db
from app.models.erasure import RESTRICTION_GROUNDS, RETAIN_GROUNDS
from app.services import erasure, restrictions, subjects
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


FIELD_ID = validate.Regexp(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")
GROUNDS = validate.OneOf(sorted(RESTRICTION_GROUNDS.keys() | RETAIN_GROUNDS.keys()))


class RestrictSchema(IdentitiesSchema):
    fields_ = fields.List(
        fields.String(validate=FIELD_ID),
        data_key="fields",
        load_default=None,
        metadata={"description": "Field ids; omitted restricts every field."},
    )
    ground = fields.String(required=True, validate=GROUNDS)
    lift_at = fields.AwareDateTime(load_default=None)


class LiftSchema(IdentitiesSchema):
    fields_ = fields.List(
        fields.String(validate=FIELD_ID), data_key="fields", load_default=None
    )


class StepSchema(Schema):
    outcome = fields.String(required=True, validate=validate.OneOf(erasure.OUTCOMES))
    ground = fields.String(load_default=None, validate=GROUNDS)
    lift_at = fields.AwareDateTime(load_default=None)


class EraseSchema(IdentitiesSchema):
    plan = fields.Dict(
        keys=fields.String(validate=FIELD_ID),
        values=fields.Nested(StepSchema),
        required=True,
        validate=validate.Length(min=1, error="Plan at least one field."),
    )


def _copy_reply(
    subject: Any,
    field_ids: list[str] | None,
    kind: str,
    filename: str,
    action: str,
) -> Response:
    """The subject's data as JSON or a CSV zip, audited, and committed."""
    if kind == "csv":
        archive, copy = subjects.export_zip(subject, field_ids)
        reply = Response(archive, mimetype="application/zip")
        reply.headers["Content-Disposition"] = f'attachment; filename="{filename}.zip"'
    else:
        document, copy = subjects.export_document(subject, field_ids)
        reply = jsonify(document)
    subjects.record(action, subject, copy, current_user().id, format=kind)
    db.session.commit()
    return reply


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
        return _copy_reply(
            subject, None, body["format"], "personal-data", "registry.subject_exported"
        )


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


@blp.route("/portability")
class Portability(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(ExportSchema)
    @blp.doc(responses=ZIP_REPLY)
    def post(self, body: dict[str, Any]) -> Response:
        """The export within Art 20: provided or observed, on consent or contract."""
        subject = subjects.find(body["identities"])
        portable = subjects.portable_ids(subject)
        return _copy_reply(
            subject,
            portable,
            body["format"],
            "portable-data",
            "registry.subject_ported",
        )


@blp.route("/restrict")
class Restrict(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(RestrictSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Restrict fields (Art 18): stored, but left out of every read."""
        subject = subjects.find(body["identities"])
        made = restrictions.restrict_subject(
            subject, body["fields_"], body["ground"], body["lift_at"], current_user().id
        )
        db.session.commit()
        return jsonify({"restricted": made})


@blp.route("/lift")
class Lift(MethodView):
    @require_roles("dpo")
    @blp.arguments(LiftSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Lift the subject's restrictions on the fields named (all when omitted)."""
        subject = subjects.find(body["identities"])
        lifted = restrictions.lift_subject(subject, body["fields_"], current_user().id)
        db.session.commit()
        return jsonify({"lifted": lifted})


@blp.route("/erase")
class Erase(MethodView):
    @require_roles("dpo")
    @blp.arguments(EraseSchema)
    def post(self, body: dict[str, Any]) -> Response:
        """Erase per field (Art 17): delete, anonymise, restrict or retain."""
        outcome = erasure.erase(
            body["identities"], body["plan"], current_user().id, durable=True
        )
        db.session.commit()
        return jsonify(outcome)
