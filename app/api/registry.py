"""The personal-data registry: systems, fields, vocabulary, the catalogue, usage."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from app.api.auth import current_user, require_roles
from app.api.blueprint import Blueprint
from app.api.registry_schemas import (
    CatalogueArgs,
    CatalogueReportSchema,
    CategoryCreateSchema,
    CategoryListSchema,
    CategoryReplySchema,
    FieldCreateSchema,
    FieldListArgs,
    FieldListSchema,
    FieldReplySchema,
    FormFieldsSchema,
    ProcessFieldsArgs,
    ProcessFieldsSchema,
    PurposeCreateSchema,
    PurposeListSchema,
    PurposeReplySchema,
    SystemBodySchema,
    SystemCheckedSchema,
    SystemCreateSchema,
    SystemListSchema,
    TaxonomySchema,
    WhereUsedSchema,
)
from app.errors import BadRequest
from app.extensions import db
from app.models import Category, Field, Purpose, System
from app.services import catalogue, registry, registry_changes, usage
from app.services.registry_schemas import CategorySchema, FieldSchema, PurposeSchema

PREFIX = "registry"
blp = Blueprint(
    "registry", __name__, description="The personal-data registry: what is kept why."
)

READERS = ("dpo", "privacy_officer", "admin", "process_designer")
WRITERS = ("dpo", "admin")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
# A YAML body's schema describes the document once parsed: a mapping of sections.
CATALOGUE_DOCUMENT = {
    "type": "object",
    "properties": {
        section: {"type": "object"} for section in ("systems", "purposes", "categories")
    },
}
YAML_BODY = {
    "content": {"application/yaml": {"schema": CATALOGUE_DOCUMENT}},
    "required": True,
}
YAML_REPLY = {
    "200": {
        "description": "The catalogue as YAML",
        "content": {"application/yaml": {"schema": CATALOGUE_DOCUMENT}},
    }
}


@blp.route("/systems")
class Systems(MethodView):
    @require_roles(*READERS)
    @blp.response(200, SystemListSchema)
    def get(self) -> dict[str, Any]:
        """Every system, with its entities."""
        return {"items": registry.list_systems()}

    @require_roles(*WRITERS)
    @blp.arguments(SystemCreateSchema)
    @blp.response(201, SystemCheckedSchema)
    def post(self, body: dict[str, Any]) -> System:
        """Add a system with its entities."""
        system = registry_changes.create_system(body, current_user().id)
        db.session.commit()
        return system


@blp.route("/systems/<key>")
class SystemDetail(MethodView):
    @require_roles(*READERS)
    @blp.response(200, SystemCheckedSchema)
    def get(self, key: str) -> System:
        """A system with its entities, warned of unindexed subject lookups."""
        return registry.get_system(key)

    @require_roles(*WRITERS)
    @blp.arguments(SystemBodySchema)
    @blp.response(200, SystemCheckedSchema)
    def put(self, body: dict[str, Any], key: str) -> System:
        """Replace a system and its list of entities (an entity with fields stays)."""
        system = registry_changes.replace_system(key, body, current_user().id)
        db.session.commit()
        return system

    @require_roles(*WRITERS)
    @blp.response(204)
    def delete(self, key: str) -> None:
        """Remove a system and its fields, unless a form or a recipient uses them."""
        registry_changes.delete_system(key, current_user().id)
        db.session.commit()


@blp.route("/fields")
class Fields(MethodView):
    @require_roles(*READERS)
    @blp.arguments(FieldListArgs, location="query")
    @blp.response(200, FieldListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Fields by system, category (with sub-categories), purpose, special."""
        return {"items": registry.list_fields(**args)}

    @require_roles(*WRITERS)
    @blp.arguments(FieldCreateSchema)
    @blp.response(201, FieldReplySchema)
    def post(self, body: dict[str, Any]) -> Field:
        """Add a field to an entity; its id is system.entity.field."""
        row = registry_changes.create_field(body, current_user().id)
        db.session.commit()
        return row


@blp.route("/fields/<field_id>")
class FieldDetail(MethodView):
    @require_roles(*READERS)
    @blp.response(200, FieldReplySchema)
    def get(self, field_id: str) -> Field:
        return registry.get_field(field_id)

    @require_roles(*WRITERS)
    @blp.arguments(FieldSchema)
    @blp.response(200, FieldReplySchema)
    def put(self, body: dict[str, Any], field_id: str) -> Field:
        """Replace everything the registry records about a field."""
        row = registry_changes.replace_field(field_id, body, current_user().id)
        db.session.commit()
        return row

    @require_roles(*WRITERS)
    @blp.response(204)
    def delete(self, field_id: str) -> None:
        """Remove a field that no deployed form binds."""
        registry_changes.delete_field(field_id, current_user().id)
        db.session.commit()


@blp.route("/fields/<field_id>/where-used")
class WhereUsed(MethodView):
    @require_roles(*READERS)
    @blp.response(200, WhereUsedSchema)
    def get(self, field_id: str) -> dict[str, Any]:
        """The field's system, purposes and recipients; the forms and tasks using it."""
        return usage.where_used(field_id)


@blp.route("/forms/<form_name>/fields")
class FormFields(MethodView):
    @require_roles(*READERS)
    @blp.response(200, FormFieldsSchema)
    def get(self, form_name: str) -> dict[str, Any]:
        """The registry fields the latest version of a form binds."""
        return usage.form_fields(form_name)


@blp.route("/processes/<process_id>/fields")
class ProcessFields(MethodView):
    @require_roles(*READERS)
    @blp.arguments(ProcessFieldsArgs, location="query")
    @blp.response(200, ProcessFieldsSchema)
    def get(self, args: dict[str, Any], process_id: str) -> dict[str, Any]:
        """The registry fields a process version's tasks show and operators reach."""
        return usage.process_fields(process_id, args.get("version"))


@blp.route("/purposes")
class Purposes(MethodView):
    @require_roles(*READERS)
    @blp.response(200, PurposeListSchema)
    def get(self) -> dict[str, Any]:
        """The organisation's own purposes (the Fides data uses are in /taxonomy)."""
        return {"items": registry.list_purposes()}

    @require_roles(*WRITERS)
    @blp.arguments(PurposeCreateSchema)
    @blp.response(201, PurposeReplySchema)
    def post(self, body: dict[str, Any]) -> Purpose:
        purpose = registry_changes.create_purpose(body, current_user().id)
        db.session.commit()
        return purpose


@blp.route("/purposes/<key>")
class PurposeDetail(MethodView):
    @require_roles(*WRITERS)
    @blp.arguments(PurposeSchema)
    @blp.response(200, PurposeReplySchema)
    def put(self, body: dict[str, Any], key: str) -> Purpose:
        """Replace an organisation purpose; Fides data uses are not ours to change."""
        purpose = registry_changes.replace_purpose(key, body, current_user().id)
        db.session.commit()
        return purpose

    @require_roles(*WRITERS)
    @blp.response(204)
    def delete(self, key: str) -> None:
        """Remove a purpose no field names and no deployed task declares."""
        registry_changes.delete_purpose(key, current_user().id)
        db.session.commit()


@blp.route("/categories")
class Categories(MethodView):
    @require_roles(*READERS)
    @blp.response(200, CategoryListSchema)
    def get(self) -> dict[str, Any]:
        """The organisation's own data categories (Fides's are in /taxonomy)."""
        return {"items": registry.list_categories()}

    @require_roles(*WRITERS)
    @blp.arguments(CategoryCreateSchema)
    @blp.response(201, CategoryReplySchema)
    def post(self, body: dict[str, Any]) -> Category:
        category = registry_changes.create_category(body, current_user().id)
        db.session.commit()
        return category


@blp.route("/categories/<key>")
class CategoryDetail(MethodView):
    @require_roles(*WRITERS)
    @blp.arguments(CategorySchema)
    @blp.response(200, CategoryReplySchema)
    def put(self, body: dict[str, Any], key: str) -> Category:
        """Replace an organisation category; Fides categories are not ours to change."""
        category = registry_changes.replace_category(key, body, current_user().id)
        db.session.commit()
        return category

    @require_roles(*WRITERS)
    @blp.response(204)
    def delete(self, key: str) -> None:
        """Remove a category no field, sub-category, form or task relies on."""
        registry_changes.delete_category(key, current_user().id)
        db.session.commit()


@blp.route("/taxonomy")
class Taxonomy(MethodView):
    @require_roles(*READERS)
    @blp.response(200, TaxonomySchema)
    def get(self) -> dict[str, Any]:
        """The categories and purposes fields may name: Fides and the organisation's."""
        return registry.vocabulary()


@blp.route("/catalogue")
class Catalogue(MethodView):
    @require_roles(*READERS)
    @blp.doc(responses=YAML_REPLY)
    def get(self) -> Response:
        """The whole registry as a YAML catalogue, in the shape a load reads."""
        text = catalogue.dump_yaml(catalogue.export_catalogue())
        return Response(text, mimetype="application/yaml")

    @require_roles(*WRITERS)
    @blp.arguments(CatalogueArgs, location="query")
    @blp.response(200, CatalogueReportSchema)
    @blp.doc(requestBody=YAML_BODY)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Load a YAML catalogue whole or not at all; `replace` removes the rest."""
        report = catalogue.load_catalogue(
            _yaml_text(), replace=args["replace"], actor_id=current_user().id
        )
        db.session.commit()
        return {
            "replace": report.replace,
            "counts": report.counts(),
            "changes": {
                kind: {
                    state: keys
                    for state, keys in states.items()
                    if keys and state != registry_changes.UNCHANGED
                }
                for kind, states in report.changes.items()
            },
        }


def _yaml_text() -> str:
    if request.mimetype not in YAML_TYPES:
        raise BadRequest(
            "Send the catalogue as application/yaml.",
            code="unsupported-media-type",
            status=415,
        )
    try:
        return request.get_data().decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(
            "The catalogue is not UTF-8 text.", code="malformed-yaml"
        ) from None
