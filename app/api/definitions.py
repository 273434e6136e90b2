"""Process definitions and forms: list, get, deploy, validate without deploying."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.schemas import (
    DefinitionListSchema,
    DefinitionSchema,
    DeployArgs,
    DeploymentSchema,
    ValidationResultSchema,
)
from app.errors import BadRequest
from app.extensions import db
from app.models import ProcessDefinition
from app.roles import DESIGNERS
from app.services import definitions

PREFIX = "definitions"
blp = Blueprint("definitions", __name__, description="Deployed BPMN processes.")

READERS = ("process_designer", "admin", "dpo", "privacy_officer")
BPMN_UPLOAD = {
    "content": {
        "application/xml": {"schema": {"type": "string"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "bpmn": {"type": "string", "format": "binary"},
                    "forms": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                    },
                },
                "required": ["bpmn"],
            }
        },
    },
    "required": True,
}


def _upload(args: dict[str, Any]) -> tuple[bytes, str, dict[str, Any]]:
    """The BPMN bytes, its filename and any forms sent with it."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("bpmn")
        if upload is None:
            raise BadRequest(
                "Send the BPMN file in the 'bpmn' field.", code="bpmn-missing"
            )
        uploaded_forms = {
            _form_name(item.filename): _form_json(item.filename, item.read())
            for item in request.files.getlist("forms")
        }
        return upload.read(), upload.filename or "upload.bpmn", uploaded_forms
    if request.mimetype in ("application/xml", "text/xml"):
        return request.get_data(), args.get("filename", "upload.bpmn"), {}
    raise BadRequest(
        "Send BPMN as application/xml or as multipart/form-data.",
        code="unsupported-media-type",
        status=415,
    )


def _form_name(filename: str | None) -> str:
    return (filename or "").rsplit("/", 1)[-1].removesuffix(".json")


def _form_json(filename: str | None, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise BadRequest(
            f"The form file {filename} is not JSON.", code="malformed-form"
        ) from None


def _with_counts(definition: ProcessDefinition) -> ProcessDefinition:
    counts = definitions.running_counts(definition)
    for version in definition.versions:
        version.running_instances = counts.get(version.id, 0)
    return definition


@blp.route("")
class Definitions(MethodView):
    @require_roles(*READERS)
    @blp.response(200, DefinitionListSchema)
    def get(self) -> dict[str, Any]:
        """List the deployed process definitions with their latest versions."""
        return {"items": [_with_counts(d) for d in definitions.list_definitions()]}

    @require_roles(*DESIGNERS)
    @blp.arguments(DeployArgs, location="query")
    @blp.response(201, DeploymentSchema)
    @blp.alt_response(200, schema=DeploymentSchema, description="Already deployed")
    @blp.doc(requestBody=BPMN_UPLOAD)
    def post(self, args: dict[str, Any]) -> Any:
        """Deploy a BPMN file; the same content again is a no-op (200)."""
        bpmn, filename, uploaded_forms = _upload(args)
        deployment = definitions.deploy(
            bpmn, filename, current_user().id, args.get("process_id"), uploaded_forms
        )
        db.session.commit()
        version = deployment.version
        version.running_instances = 0
        body = {
            "created": deployment.created,
            "process_id": version.definition.bpmn_process_id,
            "version": version,
        }
        return body, 201 if deployment.created else 200


@blp.route("/validate")
class Validate(MethodView):
    @require_roles(*DESIGNERS)
    @blp.arguments(DeployArgs, location="query")
    @blp.response(200, ValidationResultSchema)
    @blp.doc(requestBody=BPMN_UPLOAD)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check a BPMN file as deployment would, and store nothing."""
        bpmn, filename, uploaded_forms = _upload(args)
        checked = definitions.check(
            bpmn, filename, args.get("process_id"), uploaded_forms
        )
        db.session.rollback()
        parsed = checked.parsed
        return {
            "valid": True,
            "process_id": parsed.process_id,
            "name": parsed.name,
            "user_tasks": [definitions.task_summary(t) for t in parsed.user_tasks],
            "service_operators": parsed.service_operators,
        }


@blp.route("/<process_id>")
class Definition(MethodView):
    @require_roles(*READERS)
    @blp.response(200, DefinitionSchema)
    def get(self, process_id: str) -> ProcessDefinition:
        """One definition with every version and its running instances."""
        return _with_counts(definitions.get_definition(process_id))
