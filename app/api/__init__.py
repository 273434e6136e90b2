"""HTTP API under /api/v1: thin handlers over the services."""

from __future__ import annotations

import http
from typing import Any

from flask import Flask
from flask_smorest import Api
from marshmallow import INCLUDE, Schema, fields
from werkzeug.routing import IntegerConverter, Map

from app.api import (
    breaches,
    consent,
    consent_links,
    deadlines,
    definitions,
    dpia,
    forms,
    health,
    instances,
    letters,
    messages,
    privacy_notices,
    registry,
    reports,
    retention,
    subject_requests,
    subjects,
    subscribers,
    tasks,
    users,
    webhook_intake,
    webhooks,
)
from app.api.auth import authenticate, handle_forbidden
from app.api.blueprint import refuse_nul_in_path
from app.errors import PROBLEM_JSON, Forbidden

PROTECTED = (
    breaches,
    definitions,
    forms,
    instances,
    tasks,
    messages,
    deadlines,
    users,
    webhooks,
    subscribers,
    registry,
    subjects,
    subject_requests,
    reports,
    letters,
    consent,
    privacy_notices,
    dpia,
    retention,
)


class FieldErrorSchema(Schema):
    class Meta:
        # Besides the field: where it was sent ("in": json, query) and the like.
        unknown = INCLUDE

    field = fields.String(allow_none=True)
    element_id = fields.String(allow_none=True)
    message = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error reply of this API is written."""

    class Meta:
        # RFC 9457 allows extension members, such as a malformed file's "line".
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String(required=True)
    code = fields.String(required=True)
    errors = fields.List(fields.Nested(FieldErrorSchema))


class ProblemApi(Api):
    """flask-smorest answering and documenting errors as problem documents."""

    ERROR_SCHEMA = ProblemSchema

    def _register_error_handlers(self) -> None:
        # app.errors registers the one error path for the whole app.
        return None

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["content"] = {PROBLEM_JSON: {"schema": ProblemSchema}}
            self.spec.components.response(status.name, response, lazy=True)
        default = {
            "description": "A problem document",
            "content": {PROBLEM_JSON: {"schema": ProblemSchema}},
        }
        self.spec.components.response("DEFAULT_ERROR", default, lazy=True)


for _module in PROTECTED:
    _module.blp.before_request(authenticate)
    _module.blp.before_request(refuse_nul_in_path)


# Ids and versions are INTEGER columns: 32 bits on PostgreSQL.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """`<int:...>` within an INTEGER column: a larger id names nothing (404)."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def init_app(app: Flask) -> None:
    """A fresh Api per app, so that several apps in one process stay apart."""
    # Before any rule is added: the database drivers fail on ids out of range.
    app.url_map.converters["int"] = IdConverter
    api = ProblemApi(app)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.spec.options["security"] = [{"bearer": []}]
    for module in PROTECTED:
        api.register_blueprint(module.blp, url_prefix=f"/api/v1/{module.PREFIX}")
    api.register_blueprint(health.blp, url_prefix="/api")
    # Signed, not bearer-authenticated: outside /api/v1 on purpose.
    api.register_blueprint(webhook_intake.blp, url_prefix="/webhooks")
    api.register_blueprint(consent_links.blp, url_prefix="/consent")
    # Public on purpose: a subject reads the notice version they were shown.
    api.register_blueprint(privacy_notices.public_blp, url_prefix="/privacy")
    app.register_error_handler(Forbidden, handle_forbidden)
    app.extensions["gdpr.api"] = api
