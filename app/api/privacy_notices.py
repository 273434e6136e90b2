"""Privacy notices (Art 13, 14): generate, list and read immutable versions.

`blp` is mounted under /api/v1 behind bearer tokens; `public_blp` under /privacy
shows one version to anyone, so a subject can read the notice they saw.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.extensions import db
from app.models import PrivacyNotice
from app.services import privacy_notices

PREFIX = "privacy-notices"
blp = Blueprint(
    "privacy_notices",
    __name__,
    description="Privacy notices (Art 13, 14) drawn from the registry, versioned.",
)
public_blp = Blueprint(
    "privacy_pages",
    __name__,
    description="Public pages: one version of a privacy notice, as its subject saw it.",
)

GENERATORS = ("dpo", "admin")
READERS = ("dpo", "admin", "privacy_officer")
# The notice needs its own inline styles and nothing else: no script, no fetches.
HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
HTML = {"200": {"description": "An HTML page", "content": {"text/html": {}}}}
PDF = {"200": {"description": "A PDF", "content": {"application/pdf": {}}}}


class GenerateSchema(Schema):
    scope = fields.String(
        required=True,
        validate=validate.Length(1, 320),
        metadata={"description": "`purpose:KEY` or `system:KEY`"},
    )


class FindingSchema(Schema):
    code = fields.String()
    article = fields.String()
    purpose = fields.String()
    message = fields.String()


class NoticeSummarySchema(Schema):
    id = fields.Integer()
    scope = fields.String()
    version = fields.Integer()
    content_sha256 = fields.String()
    generated_at = fields.DateTime()
    generated_by_id = fields.Integer(allow_none=True)
    findings = fields.List(fields.Nested(FindingSchema))
    public_url = fields.Function(privacy_notices.public_path)


class NoticeSchema(NoticeSummarySchema):
    content = fields.Dict()


class NoticeListSchema(Schema):
    items = fields.List(fields.Nested(NoticeSummarySchema))


@blp.route("/generate")
class Generate(MethodView):
    @require_roles(*GENERATORS)
    @blp.arguments(GenerateSchema)
    @blp.response(201, NoticeSchema)
    @blp.alt_response(200, schema=NoticeSchema, description="Content unchanged")
    def post(self, body: dict[str, Any]) -> Any:
        """Render the notice; a new version only if its content changed (else 200)."""
        notice, created = privacy_notices.generate(body["scope"], current_user().id)
        db.session.commit()
        return notice, 201 if created else 200


@blp.route("")
class Notices(MethodView):
    @require_roles(*READERS)
    @blp.response(200, NoticeListSchema)
    def get(self) -> dict[str, Any]:
        """Every scope with a notice, each with its latest version."""
        return {"items": privacy_notices.list_latest()}


@blp.route("/<scope>/versions")
class Versions(MethodView):
    @require_roles(*READERS)
    @blp.response(200, NoticeListSchema)
    def get(self, scope: str) -> dict[str, Any]:
        """The versions of one scope's notice, oldest first."""
        return {"items": privacy_notices.versions(scope)}


@blp.route("/<scope>/versions/<int:version>")
class Version(MethodView):
    @require_roles(*READERS)
    @blp.response(200, NoticeSchema)
    def get(self, scope: str, version: int) -> PrivacyNotice:
        """One version: its content and metadata."""
        return privacy_notices.get_version(scope, version)


@blp.route("/<scope>/versions/<int:version>/html")
class VersionHtml(MethodView):
    @require_roles(*READERS)
    @blp.doc(responses=HTML)
    def get(self, scope: str, version: int) -> Response:
        """One version exactly as it was rendered."""
        return _html(privacy_notices.get_version(scope, version))


@blp.route("/<scope>/versions/<int:version>/pdf")
class VersionPdf(MethodView):
    @require_roles(*READERS)
    @blp.doc(responses=PDF)
    def get(self, scope: str, version: int) -> Response:
        """One version as a PDF."""
        notice = privacy_notices.get_version(scope, version)
        response = Response(
            privacy_notices.render_pdf(notice), mimetype="application/pdf"
        )
        name = f"privacy-notice-{notice.scope.replace(':', '-')}-v{notice.version}.pdf"
        response.headers["Content-Disposition"] = f'inline; filename="{name}"'
        return response


@public_blp.route("/<scope>/<int:version>")
class PublicVersion(MethodView):
    @public_blp.doc(responses=HTML, security=[])
    def get(self, scope: str, version: int) -> Response:
        """One version of a privacy notice, readable without signing in."""
        return _html(privacy_notices.get_version(scope, version))


def _html(notice: PrivacyNotice) -> Response:
    response = Response(notice.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_POLICY
    return response
