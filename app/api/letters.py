"""Letters, their editable templates, and the mail outbox."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import PageArgs, PageSchema
from app.database import will_write
from app.extensions import db
from app.models import LetterTemplate, MailMessage
from app.models.letters import MAIL_STATUSES
from app.roles import OFFICERS
from app.services import instances, letters, mail

# Mounted at /api/v1 itself: its routes span templates, instances, letters and mail.
PREFIX = ""
blp = Blueprint("letters", __name__, description="Letters, templates and the outbox.")

EDITORS = ("dpo", "admin")
TEMPLATE_READERS = ("dpo", "admin", "privacy_officer", "process_designer")
# Stored letters are shown, never run: no script, no fetch, inline style only.
LETTER_CSP = "default-src 'none'; style-src 'unsafe-inline'"
BINARY = {"type": "string", "format": "binary"}


class LetterTemplateVersionSchema(Schema):
    version = fields.Integer()
    content_sha256 = fields.String()
    created_at = fields.AwareDateTime()
    created_by = fields.Integer(allow_none=True)


class LetterTemplateSchema(LetterTemplateVersionSchema):
    key = fields.String()
    body = fields.String()


class LetterTemplateDetailSchema(LetterTemplateSchema):
    versions = fields.List(fields.Nested(LetterTemplateVersionSchema))


class LetterTemplateSummarySchema(LetterTemplateVersionSchema):
    key = fields.String()


class LetterTemplateSummaryListSchema(Schema):
    items = fields.List(fields.Nested(LetterTemplateSummarySchema))


class LetterTemplateBodySchema(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=200_000))


class LetterSchema(Schema):
    id = fields.String()
    instance_id = fields.String()
    template = fields.String(attribute="template_key")
    version = fields.Integer(attribute="template_version")
    subject = fields.String(attribute="subject_line")
    recipient = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    created_by = fields.Integer(allow_none=True)


class LetterListSchema(Schema):
    items = fields.List(fields.Nested(LetterSchema))


class MailAttachmentSchema(Schema):
    filename = fields.String()
    content_type = fields.String()
    size = fields.Integer()


class MailSchema(Schema):
    id = fields.Integer()
    instance_id = fields.String(allow_none=True)
    letter_id = fields.String(allow_none=True)
    to = fields.String(attribute="to_address")
    subject = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    sent_at = fields.AwareDateTime(allow_none=True)
    attachments = fields.List(fields.Nested(MailAttachmentSchema))


class MailDetailSchema(MailSchema):
    body_text = fields.String()
    body_html = fields.String()


class MailPageSchema(PageSchema):
    items = fields.List(fields.Nested(MailSchema))


class MailListArgs(PageArgs):
    instance_id = fields.String()
    status = fields.String(validate=validate.OneOf(MAIL_STATUSES))


def _detail(template: LetterTemplate) -> dict[str, Any]:
    return {
        "key": template.key,
        "body": template.body,
        "version": template.version,
        "content_sha256": template.content_sha256,
        "created_at": template.created_at,
        "created_by": template.created_by,
        "versions": letters.versions(template.key),
    }


@blp.route("/letter-templates")
class Templates(MethodView):
    @require_roles(*TEMPLATE_READERS)
    @blp.response(200, LetterTemplateSummaryListSchema)
    def get(self) -> dict[str, Any]:
        """The latest version of every letter template."""
        return {"items": letters.list_templates()}


@blp.route("/letter-templates/<key>")
class Template(MethodView):
    @require_roles(*TEMPLATE_READERS)
    @blp.response(200, LetterTemplateDetailSchema)
    def get(self, key: str) -> dict[str, Any]:
        """The latest version of a template, its body and every version."""
        return _detail(letters.get_template(key))

    @require_roles(*EDITORS)
    @blp.arguments(LetterTemplateBodySchema)
    @blp.response(200, LetterTemplateDetailSchema)
    def put(self, body: dict[str, Any], key: str) -> dict[str, Any]:
        """Save a new version (the same content again changes nothing)."""
        template, _ = letters.deploy_template(key, body["body"], current_user().id)
        db.session.commit()
        return _detail(template)


@blp.route("/instances/<instance_id>/letters")
class InstanceLetters(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, LetterListSchema)
    def get(self, instance_id: str) -> dict[str, Any]:
        """The letters written for an instance, oldest first."""
        instance = instances.get_instance(instance_id)
        return {"items": letters.letters_of(instance.id)}


@blp.route("/letters/<letter_id>")
class LetterDetail(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, LetterSchema)
    def get(self, letter_id: str) -> Any:
        """A letter's metadata."""
        return letters.get_letter(letter_id)


@blp.route("/letters/<letter_id>/html")
class LetterHtml(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, {"type": "string"}, content_type="text/html")
    def get(self, letter_id: str) -> Response:
        """The letter as stored HTML, under a policy that lets no script run."""
        will_write()
        letter = letters.get_letter(letter_id)
        letters.record_read(letter, current_user().id, "html")
        db.session.commit()
        reply = Response(letter.html, mimetype="text/html")
        reply.headers["Content-Security-Policy"] = LETTER_CSP
        reply.headers["X-Content-Type-Options"] = "nosniff"
        return reply


@blp.route("/letters/<letter_id>/pdf")
class LetterPdf(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, BINARY, content_type="application/pdf")
    def get(self, letter_id: str) -> Response:
        """The letter as a PDF download."""
        will_write()
        letter = letters.get_letter(letter_id)
        content = letters.pdf(letter)
        letters.record_read(letter, current_user().id, "pdf")
        db.session.commit()
        return _download(content, "application/pdf", letters.pdf_filename(letter))


@blp.route("/mail")
class Outbox(MethodView):
    @require_roles(*OFFICERS)
    @blp.arguments(MailListArgs, location="query")
    @blp.response(200, MailPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Outbound mail, newest first; filters by instance and status."""
        return mail.list_messages(
            args.get("instance_id"), args.get("status"), args["page"], args["page_size"]
        )


@blp.route("/mail/<int:mail_id>")
class Mail(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, MailDetailSchema)
    def get(self, mail_id: int) -> MailMessage:
        """One message with its text and its attachments' names and sizes."""
        return mail.get_message(mail_id)


@blp.route("/mail/<int:mail_id>/attachments/<name>")
class MailAttachmentFile(MethodView):
    @require_roles(*OFFICERS)
    @blp.response(200, BINARY, content_type="application/octet-stream")
    def get(self, mail_id: int, name: str) -> Response:
        """One attachment of a message, as it will be (or was) sent."""
        attachment = mail.get_attachment(mail.get_message(mail_id), name)
        return _download(
            attachment.content, attachment.content_type, attachment.filename
        )


def _download(content: bytes, content_type: str, filename: str) -> Response:
    reply = Response(content, mimetype=content_type)
    reply.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    reply.headers["X-Content-Type-Options"] = "nosniff"
    return reply
