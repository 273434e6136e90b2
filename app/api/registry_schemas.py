"""Schemas of the registry API: request bodies from the registry's documents."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.countries import third_country
from app.models.registry import ART9_CONDITIONS, LEGAL_BASES
from app.services import connectors
from app.services.registry_schemas import (
    CATEGORY_KEY,
    FIELD_ID,
    KEY,
    NEW_PURPOSE_KEY,
    CategorySchema,
    EntitySchema,
    FieldSchema,
    PurposeSchema,
    SystemSchema,
)

# --- requests ---------------------------------------------------------------------


class EntityBodySchema(EntitySchema):
    key = fields.String(required=True, validate=KEY)


class SystemBodySchema(SystemSchema):
    """A system with the list of its entities (their fields are managed apart)."""

    entities = fields.List(fields.Nested(EntityBodySchema), load_default=list)

    @validates_schema
    def _entity_keys_once(self, data: dict[str, Any], **_: Any) -> None:
        keys = [entity["key"] for entity in data.get("entities", [])]
        if len(keys) != len(set(keys)):
            raise ValidationError("Each entity key is listed once.", "entities")


class SystemCreateSchema(SystemBodySchema):
    key = fields.String(required=True, validate=KEY)


class FieldCreateSchema(FieldSchema):
    id = fields.String(required=True, validate=FIELD_ID)


class PurposeCreateSchema(PurposeSchema):
    key = fields.String(required=True, validate=NEW_PURPOSE_KEY)


class CategoryCreateSchema(CategorySchema):
    key = fields.String(required=True, validate=CATEGORY_KEY)


class FieldListArgs(Schema):
    system = fields.String(validate=KEY)
    category = fields.String()
    purpose = fields.String()
    special = fields.Boolean()


class CatalogueArgs(Schema):
    replace = fields.Boolean(load_default=False)


class ProcessFieldsArgs(Schema):
    version = fields.Integer(validate=validate.Range(min=1))


# --- replies ----------------------------------------------------------------------


class EntitySummarySchema(Schema):
    key = fields.String()
    name = fields.String()
    subject_category = fields.String()
    subject_key = fields.String()
    table = fields.String(allow_none=True)


class EntityReplySchema(EntitySummarySchema):
    field_keys = fields.Function(
        lambda entity: [row.key for row in entity.fields], data_key="fields"
    )


class SubProcessorReplySchema(Schema):
    name = fields.String()
    country = fields.String()
    safeguard = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class AgreementReplySchema(Schema):
    status = fields.String(attribute="agreement_status")
    signed_on = fields.Date(attribute="agreement_signed_on", allow_none=True)
    reference = fields.String(attribute="agreement_reference", allow_none=True)
    terms = fields.Dict(
        attribute="agreement_terms", keys=fields.String(), values=fields.Boolean()
    )
    sub_processors = fields.List(fields.Nested(SubProcessorReplySchema))


class SystemSummarySchema(Schema):
    key = fields.String()
    name = fields.String()
    owner = fields.String()
    location = fields.String()
    country = fields.String()
    third_country = fields.Function(lambda system: third_country(system.country))
    role = fields.String()
    processor_agreement = fields.Function(
        lambda system: AgreementReplySchema().dump(system)
    )
    description = fields.String()
    security_measures = fields.String()
    transfer_safeguard = fields.String(allow_none=True)
    transfer_note = fields.String(allow_none=True)
    connection = fields.String(allow_none=True)
    retention_review = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SystemReplySchema(SystemSummarySchema):
    entities = fields.List(fields.Nested(EntityReplySchema))


class SystemCheckedSchema(SystemReplySchema):
    """One system as it is registered: with what its connected tables lack."""

    warnings = fields.Function(
        connectors.index_warnings,
        metadata={
            "type": "array",
            "items": {"type": "string"},
            "description": "Subject-key and identifier columns that have no index.",
        },
    )


class SystemListSchema(Schema):
    items = fields.List(fields.Nested(SystemReplySchema))


class RetentionReplySchema(Schema):
    period = fields.String(allow_none=True)
    anchor = fields.String(allow_none=True)
    criterion = fields.String(allow_none=True)
    anchor_column = fields.String()
    until = fields.String()
    on_expiry = fields.String()
    ground = fields.String()


class RecipientReplySchema(Schema):
    system = fields.String()
    name = fields.String()
    country = fields.String()
    safeguard = fields.String()
    note = fields.String()


class FieldReplySchema(Schema):
    id = fields.String(attribute="field_id")
    system = fields.Function(lambda row: row.entity.system.key)
    entity = fields.Function(lambda row: row.entity.key)
    key = fields.String()
    name = fields.String()
    data_category = fields.String()
    purposes = fields.List(fields.String())
    legal_basis = fields.String()
    legal_basis_article = fields.Function(lambda row: LEGAL_BASES[row.legal_basis])
    special_category = fields.Boolean()
    art9_condition = fields.String(allow_none=True)
    art9_article = fields.Function(
        lambda row: ART9_CONDITIONS.get(row.art9_condition or "")
    )
    origin = fields.String()
    retention = fields.Nested(RetentionReplySchema)
    recipients = fields.List(fields.Nested(RecipientReplySchema))
    automated_decision = fields.Boolean()
    automated_decision_logic = fields.String(allow_none=True)
    column = fields.String(allow_none=True)
    portable = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class FieldListSchema(Schema):
    items = fields.List(fields.Nested(FieldReplySchema))


class PurposeReplySchema(Schema):
    key = fields.String()
    name = fields.String()
    description = fields.String()
    legal_basis = fields.String(allow_none=True)
    legitimate_interest = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PurposeListSchema(Schema):
    items = fields.List(fields.Nested(PurposeReplySchema))


class CategoryReplySchema(Schema):
    key = fields.String()
    name = fields.String()
    description = fields.String()
    special_category = fields.Boolean()
    art9_basis_note = fields.String(allow_none=True)
    parent = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CategoryListSchema(Schema):
    items = fields.List(fields.Nested(CategoryReplySchema))


class TermSchema(Schema):
    key = fields.String()
    name = fields.String()
    description = fields.String()
    source = fields.String()
    legal_basis = fields.String(allow_none=True)
    special_category = fields.Boolean()
    art9_basis_note = fields.String(allow_none=True)
    parent = fields.String(allow_none=True)
    deprecated = fields.Boolean()
    replaced_by = fields.String(allow_none=True)


class ArticleSchema(Schema):
    key = fields.String()
    article = fields.String()


class TaxonomySchema(Schema):
    data_categories = fields.List(fields.Nested(TermSchema))
    purposes = fields.List(fields.Nested(TermSchema))
    subject_categories = fields.List(fields.Nested(TermSchema))
    legal_bases = fields.List(fields.Nested(ArticleSchema))
    art9_conditions = fields.List(fields.Nested(ArticleSchema))


class CatalogueReportSchema(Schema):
    replace = fields.Boolean()
    counts = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String()))
    changes = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.List(fields.String())),
    )


class DescribedRecipientSchema(Schema):
    system = fields.String()
    name = fields.String(allow_none=True)
    role = fields.String()
    country = fields.String(allow_none=True)
    agreement_status = fields.String()
    third_country = fields.Boolean()


class FormUseSchema(Schema):
    name = fields.String()
    version_id = fields.Integer()
    properties = fields.List(fields.String())


class TaskUseSchema(Schema):
    process_id = fields.String()
    definition_version = fields.Integer()
    bpmn_id = fields.String()
    title = fields.String(allow_none=True)
    form = fields.String()
    purpose = fields.String(allow_none=True)
    purpose_allowed = fields.Boolean()


class WhereUsedSchema(Schema):
    field = fields.Nested(FieldReplySchema)
    system = fields.Nested(SystemSummarySchema)
    entity = fields.Nested(EntitySummarySchema)
    recipients = fields.List(fields.Nested(DescribedRecipientSchema))
    forms = fields.List(fields.Nested(FormUseSchema))
    tasks = fields.List(fields.Nested(TaskUseSchema))


class BoundFieldSchema(Schema):
    property = fields.String()
    field_id = fields.String()
    known = fields.Function(lambda item: item["field"] is not None)
    field = fields.Nested(FieldReplySchema, allow_none=True)


class FormFieldsSchema(Schema):
    form = fields.String()
    version_id = fields.Integer()
    items = fields.List(fields.Nested(BoundFieldSchema))


class FieldUseSchema(Schema):
    field_id = fields.String()
    known = fields.Boolean()
    name = fields.String()
    system = fields.String()
    entity = fields.String()
    data_category = fields.String()
    special_category = fields.Boolean()
    purposes = fields.List(fields.String())


class BoundTaskFieldSchema(FieldUseSchema):
    property = fields.String()
    purpose_allowed = fields.Boolean()


class UserTaskFieldsSchema(Schema):
    bpmn_id = fields.String()
    title = fields.String(allow_none=True)
    lane = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    form = fields.String(allow_none=True)
    form_version_id = fields.Integer(allow_none=True)
    purpose = fields.String(allow_none=True)
    fields_ = fields.List(
        fields.Nested(BoundTaskFieldSchema), attribute="fields", data_key="fields"
    )


class OperatorUseSchema(Schema):
    bpmn_id = fields.String()
    title = fields.String(allow_none=True)
    operator = fields.String()
    parameters = fields.List(fields.String())
    reaches = fields.String(
        metadata={
            "description": "every_field, portable_fields, named_fields (the "
            "parameters spell the field ids out) or chosen_at_run_time"
        }
    )
    fields_ = fields.List(
        fields.Nested(FieldUseSchema), attribute="fields", data_key="fields"
    )
    systems = fields.List(fields.String())


class ProcessFieldsSchema(Schema):
    process_id = fields.String()
    name = fields.String()
    definition_version = fields.Integer()
    user_tasks = fields.List(fields.Nested(UserTaskFieldsSchema))
    service_tasks = fields.List(fields.Nested(OperatorUseSchema))
