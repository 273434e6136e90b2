"""Consent (Art 7): notices, purposes' renewal settings, records and their history."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.extensions import db
from app.models import Consent, ConsentNotice
from app.models.consent import CHANNELS
from app.roles import OFFICERS
from app.services import consent
from app.services.registry_schemas import KEY

PREFIX = ""
blp = Blueprint("consent", __name__, description="Consent records, notices, renewal.")

CHANGERS = ("dpo", "admin")
READERS = RECORDERS = OFFICERS


class ConsentNoticeCreateSchema(Schema):
    purpose = fields.String(required=True, validate=validate.Length(1, 255))
    text = fields.String(required=True, validate=validate.Length(1, 100_000))
    language = fields.String(required=True, validate=validate.Length(2, 20))
    material = fields.Boolean(
        required=True,
        metadata={"description": "Whether it changes what was consented to."},
    )
    privacy_notice_version_id = fields.Integer(
        load_default=None,
        allow_none=True,
        metadata={"description": "The privacy-notice version shown with this text."},
    )


class ConsentNoticeSchema(Schema):
    id = fields.Integer()
    purpose = fields.String()
    version = fields.Integer()
    language = fields.String()
    text = fields.String()
    text_sha256 = fields.String()
    material = fields.Boolean()
    published_at = fields.DateTime()
    published_by_id = fields.Integer(allow_none=True)
    privacy_notice_version_id = fields.Integer(allow_none=True)


class ConsentNoticeListArgs(Schema):
    purpose = fields.String(load_default=None)


class ConsentNoticeListSchema(Schema):
    items = fields.List(fields.Nested(ConsentNoticeSchema))


class ConsentPurposeBodySchema(Schema):
    renewal_interval = fields.String(
        load_default=None, allow_none=True, metadata={"example": "P1Y"}
    )
    answer_window = fields.String(
        load_default=consent.DEFAULT_WINDOW, metadata={"example": "P30D"}
    )


class ConsentPurposeSchema(Schema):
    key = fields.String()
    renewal_interval = fields.String(allow_none=True)
    answer_window = fields.String()
    updated_at = fields.DateTime()


class ConsentPurposeListSchema(Schema):
    items = fields.List(fields.Nested(ConsentPurposeSchema))


class ConsentIdentitiesSchema(Schema):
    identities = fields.Dict(
        keys=fields.String(validate=KEY),
        values=fields.String(validate=validate.Length(1, 320)),
        required=True,
        validate=validate.Length(min=1, error="Name at least one identity."),
    )


class ConsentRecordingSchema(Schema):
    channel = fields.String(load_default="api", validate=validate.OneOf(CHANNELS))
    mechanism = fields.String(load_default="API call", validate=validate.Length(1, 255))


class ConsentGrantSchema(ConsentIdentitiesSchema, ConsentRecordingSchema):
    purpose = fields.String(required=True, validate=validate.Length(1, 255))
    mechanism = fields.String(required=True, validate=validate.Length(1, 255))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    notice_version = fields.Integer(load_default=None, validate=validate.Range(min=1))
    age = fields.Integer(load_default=None, validate=validate.Range(min=0, max=150))
    parental_authorisation = fields.String(
        load_default=None,
        validate=validate.Length(1, 2000),
        metadata={"description": "How parental authorisation was given (Art 8(1))."},
    )


class ConsentWithdrawSchema(ConsentIdentitiesSchema, ConsentRecordingSchema):
    purpose = fields.String(required=True, validate=validate.Length(1, 255))


class ConsentEventSchema(Schema):
    kind = fields.String()
    occurred_at = fields.DateTime()
    notice_version = fields.Integer()
    notice_sha256 = fields.String()
    channel = fields.String()
    mechanism = fields.String()
    recorded_by_id = fields.Integer(allow_none=True)
    recorded_via = fields.String()


class ConsentSchema(Schema):
    id = fields.String()
    purpose = fields.String()
    state = fields.String()
    notice_version = fields.Method("_notice_version")
    notice_sha256 = fields.Method("_notice_sha256")
    granted_at = fields.DateTime()
    renew_by = fields.DateTime(allow_none=True)
    answer_by = fields.DateTime(allow_none=True)
    renewal_instance_id = fields.String(allow_none=True)
    events = fields.Method("_events")

    def _notice(self, obj: Consent) -> Any:
        return db.session.get(ConsentNotice, obj.notice_id)

    def _notice_version(self, obj: Consent) -> int:
        return self._notice(obj).version

    def _notice_sha256(self, obj: Consent) -> str:
        return self._notice(obj).text_sha256

    def _events(self, obj: Consent) -> list[dict[str, Any]]:
        return ConsentEventSchema(many=True).dump(consent.events_of(obj))


class ConsentGrantedSchema(ConsentSchema):
    withdrawal_url = fields.Function(consent.withdraw_link)


class ConsentDemonstrateArgs(Schema):
    identity_type = fields.String(required=True, validate=KEY)
    identity_value = fields.String(required=True, validate=validate.Length(1, 320))
    format = fields.String(
        load_default="json", validate=validate.OneOf(("json", "csv"))
    )


@blp.route("/consent/notices")
class Notices(MethodView):
    @require_roles(*READERS)
    @blp.arguments(ConsentNoticeListArgs, location="query")
    @blp.response(200, ConsentNoticeListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The published notice versions, per purpose in version order."""
        return {"items": consent.list_notices(args["purpose"])}

    @require_roles(*CHANGERS)
    @blp.arguments(ConsentNoticeCreateSchema)
    @blp.response(201, ConsentNoticeSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Publish the next version of a purpose's notice (stored with its SHA-256)."""
        notice = consent.publish_notice(
            body["purpose"],
            body["text"],
            body["language"],
            body["material"],
            current_user().id,
            body["privacy_notice_version_id"],
        )
        db.session.commit()
        return notice


@blp.route("/consent/purposes")
class Purposes(MethodView):
    @require_roles(*READERS)
    @blp.response(200, ConsentPurposeListSchema)
    def get(self) -> dict[str, Any]:
        """The renewal settings of consent purposes."""
        return {"items": consent.list_purposes()}


@blp.route("/consent/purposes/<key>")
class PurposeSettings(MethodView):
    @require_roles(*CHANGERS)
    @blp.arguments(ConsentPurposeBodySchema)
    @blp.response(200, ConsentPurposeSchema)
    def put(self, body: dict[str, Any], key: str) -> Any:
        """Set a purpose's renewal interval and answer window (ISO 8601 periods)."""
        settings = consent.set_purpose(
            key, body["renewal_interval"], body["answer_window"], current_user().id
        )
        db.session.commit()
        return settings


def _recording(body: dict[str, Any]) -> consent.Recording:
    return consent.Recording(body["channel"], body["mechanism"], current_user().id)


@blp.route("/consents")
class Consents(MethodView):
    @require_roles(*RECORDERS)
    @blp.arguments(ConsentGrantSchema)
    @blp.response(201, ConsentGrantedSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Record a grant; the reply carries a signed withdrawal link."""
        granted = consent.grant(
            body["identities"],
            body["purpose"],
            _recording(body),
            notice_version=body["notice_version"],
            age=body["age"],
            parental_authorisation=body["parental_authorisation"],
        )
        db.session.commit()
        return granted


@blp.route("/consents/withdraw")
class Withdraw(MethodView):
    @require_roles(*RECORDERS)
    @blp.arguments(ConsentWithdrawSchema)
    @blp.response(200, ConsentSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Withdraw at once; a repeat changes nothing and answers the same."""
        found = consent.find_consent(body["identities"], body["purpose"])
        consent.withdraw(found, _recording(body))
        db.session.commit()
        return found


@blp.route("/consents/demonstrate")
class Demonstrate(MethodView):
    @require_roles(*CHANGERS)
    @blp.arguments(ConsentDemonstrateArgs, location="query")
    @blp.response(200)
    def get(self, args: dict[str, Any]) -> Any:
        """Every consent event of a subject with the exact notice text (Art 7(1))."""
        shown = consent.demonstrate(
            args["identity_type"], args["identity_value"], current_user().id
        )
        db.session.commit()
        if args["format"] == "csv":
            return _csv(shown)
        return shown


CSV_COLUMNS = (
    "consent_id",
    "purpose",
    "kind",
    "occurred_at",
    "notice_version",
    "notice_sha256",
    "notice_language",
    "notice_text",
    "privacy_notice_scope",
    "privacy_notice_version",
    "privacy_notice_sha256",
    "channel",
    "mechanism",
    "recorded_by_id",
    "recorded_via",
    "age",
    "parental_authorisation",
)


def _csv(shown: dict[str, Any]) -> Response:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for item in shown["consents"]:
        for entry in item["events"]:
            ids = {"consent_id": item["consent_id"], "purpose": item["purpose"]}
            writer.writerow({**entry, **ids})
    return Response(buffer.getvalue(), mimetype="text/csv")


@blp.route("/consents/<consent_id>")
class ConsentItem(MethodView):
    @require_roles(*READERS)
    @blp.response(200, ConsentSchema)
    def get(self, consent_id: str) -> Any:
        """A consent as it stands, with its events in order."""
        return consent.get_consent(consent_id)


@blp.route("/consents/<consent_id>/renew")
class Renew(MethodView):
    @require_roles(*RECORDERS)
    @blp.arguments(ConsentRecordingSchema)
    @blp.response(200, ConsentSchema)
    def post(self, body: dict[str, Any], consent_id: str) -> Any:
        """Record a renewal against the current notice; a waiting renewal ends."""
        renewed = consent.renew(consent.get_consent(consent_id), _recording(body))
        db.session.commit()
        return renewed
