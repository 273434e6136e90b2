"""Marshmallow schemas for every request and reply of the API."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from app.config import ROLES
from app.models.deadlines import KINDS as DEADLINE_KINDS
from app.models.instances import (
    INSTANCE_STATUSES,
    TASK_CANCELLED,
    TASK_COMPLETED,
    TASK_READY,
)


class Extended:
    """An object seen with a few extra attributes, for replies that add to a row."""

    def __init__(self, base: Any, **extra: Any) -> None:
        self._base = base
        self.__dict__.update(extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


TASK_STATUSES = (TASK_READY, TASK_COMPLETED, TASK_CANCELLED)


# Far past any real list, and small enough that the SQL offset stays a 64-bit integer.
MAX_PAGE = 1_000_000_000


class PageArgs(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE))
    page_size = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))


class PageSchema(Schema):
    total = fields.Integer(required=True)
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)


class UserTaskSummarySchema(Schema):
    bpmn_id = fields.String()
    title = fields.String()
    lane = fields.String(allow_none=True)
    role = fields.String(allow_none=True)
    form = fields.String(allow_none=True)
    purpose = fields.String(allow_none=True)


class DefinitionVersionSchema(Schema):
    id = fields.Integer()
    number = fields.Integer()
    content_sha256 = fields.String()
    filename = fields.String()
    created_at = fields.DateTime()
    forms = fields.Dict(keys=fields.String(), values=fields.Integer())
    user_tasks = fields.List(fields.Nested(UserTaskSummarySchema))
    running_instances = fields.Integer()


class DefinitionSchema(Schema):
    process_id = fields.String(attribute="bpmn_process_id")
    name = fields.String()
    created_at = fields.DateTime()
    latest_version = fields.Nested(DefinitionVersionSchema, attribute="latest")
    versions = fields.List(fields.Nested(DefinitionVersionSchema))


class DefinitionSummarySchema(Schema):
    process_id = fields.String(attribute="bpmn_process_id")
    name = fields.String()
    created_at = fields.DateTime()
    latest_version = fields.Nested(DefinitionVersionSchema, attribute="latest")


class DefinitionListSchema(Schema):
    items = fields.List(fields.Nested(DefinitionSummarySchema))


class DeployArgs(Schema):
    process_id = fields.String(validate=validate.Length(max=255))
    filename = fields.String(validate=validate.Length(max=255))


class DeploymentSchema(Schema):
    created = fields.Boolean()
    process_id = fields.String()
    version = fields.Nested(DefinitionVersionSchema)


class ValidationResultSchema(Schema):
    valid = fields.Boolean()
    process_id = fields.String()
    name = fields.String()
    user_tasks = fields.List(fields.Nested(UserTaskSummarySchema))
    service_operators = fields.Dict(keys=fields.String(), values=fields.String())


class FormUploadSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    schema = fields.Dict(required=True)


class FormSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    content_sha256 = fields.String()
    schema = fields.Dict()
    created_at = fields.DateTime()


class FormSummarySchema(Schema):
    id = fields.Integer()
    name = fields.String()
    content_sha256 = fields.String()
    created_at = fields.DateTime()


class FormListSchema(Schema):
    items = fields.List(fields.Nested(FormSummarySchema))


class InstanceStartSchema(Schema):
    process_id = fields.String(required=True, validate=validate.Length(min=1, max=255))
    data = fields.Dict(keys=fields.String(), load_default=dict)
    business_key = fields.String(validate=validate.Length(min=1, max=255))


class InstanceErrorSchema(Schema):
    message = fields.String()
    bpmn_id = fields.String(allow_none=True)
    task_guid = fields.String(allow_none=True)
    kind = fields.String()
    line = fields.Integer(allow_none=True)


class InstanceSchema(Schema):
    id = fields.String()
    process_id = fields.String(attribute="bpmn_process_id")
    definition_version = fields.Integer(attribute="definition_version.number")
    business_key = fields.String(allow_none=True)
    status = fields.String()
    version = fields.Integer()
    error = fields.Nested(InstanceErrorSchema, allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    completed_at = fields.DateTime(allow_none=True)


class InstanceListArgs(PageArgs):
    process_id = fields.String()
    status = fields.String(validate=validate.OneOf(INSTANCE_STATUSES))
    business_key = fields.String()


class InstancePageSchema(PageSchema):
    items = fields.List(fields.Nested(InstanceSchema))


class TaskSchema(Schema):
    id = fields.String(attribute="task_guid")
    instance_id = fields.String()
    process_id = fields.String(attribute="bpmn_process_id")
    bpmn_id = fields.String()
    title = fields.String()
    lane = fields.String(allow_none=True)
    role = fields.String()
    form = fields.String(attribute="form_name", allow_none=True)
    purpose = fields.String(allow_none=True)
    status = fields.String()
    claimed_by_id = fields.Integer(allow_none=True)
    completed_by_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    due_at = fields.DateTime(allow_none=True)
    completed_at = fields.DateTime(allow_none=True)


class TaskDetailSchema(TaskSchema):
    instructions = fields.String(allow_none=True)
    form_schema = fields.Dict(allow_none=True)
    data = fields.Dict()
    notices = fields.List(fields.String())


class TaskFieldSchema(Schema):
    field_id = fields.String()
    value = fields.Raw(allow_none=True)


class TaskListArgs(PageArgs):
    status = fields.String(
        load_default=TASK_READY, validate=validate.OneOf((*TASK_STATUSES, "any"))
    )
    process_id = fields.String()
    instance_id = fields.String()
    assigned = fields.String(validate=validate.OneOf(("me", "nobody")))


class TaskPageSchema(PageSchema):
    items = fields.List(fields.Nested(TaskSchema))


class TaskCompleteSchema(Schema):
    data = fields.Raw(load_default=dict)


class TaskCompletedSchema(Schema):
    task = fields.Nested(TaskSchema)
    instance = fields.Nested(InstanceSchema)


class HistoryEntrySchema(Schema):
    task_guid = fields.String()
    bpmn_id = fields.String()
    title = fields.String()
    type = fields.String()
    completed_at = fields.String(allow_none=True)
    completed_by_id = fields.Integer(allow_none=True)


class AuditEventSchema(Schema):
    id = fields.Integer()
    occurred_at = fields.DateTime()
    action = fields.String()
    actor_id = fields.Integer(allow_none=True)
    task_guid = fields.String(allow_none=True)
    details = fields.Dict()


class InstanceDetailSchema(InstanceSchema):
    tasks = fields.List(fields.Nested(TaskSchema))
    history = fields.List(fields.Nested(HistoryEntrySchema))
    audit_events = fields.List(fields.Nested(AuditEventSchema))


class MessageSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    correlation = fields.Dict(
        keys=fields.String(), required=True, validate=validate.Length(min=1)
    )
    payload = fields.Dict(keys=fields.String(), load_default=dict)


class MessageDeliveredSchema(Schema):
    instance = fields.Nested(InstanceSchema)


EMAIL_NOTE = "Where deadline alerts reach the user; null or empty for none."


class UserCreateSchema(Schema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9_.@-]{1,80}$", error="1-80 letters, digits or _.@-"
        ),
    )
    roles = fields.List(
        fields.String(validate=validate.OneOf(ROLES)),
        required=True,
        validate=validate.Length(min=1),
    )
    email = fields.String(
        allow_none=True, metadata={"format": "email", "description": EMAIL_NOTE}
    )


class UserUpdateSchema(Schema):
    email = fields.String(
        required=True,
        allow_none=True,
        metadata={"format": "email", "description": EMAIL_NOTE},
    )


class UserSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    roles = fields.List(fields.String())
    active = fields.Boolean()
    email = fields.String(allow_none=True)
    created_at = fields.DateTime()


class UserListSchema(Schema):
    items = fields.List(fields.Nested(UserSchema))


class TokenCreateSchema(Schema):
    label = fields.String(load_default="", validate=validate.Length(max=80))


class TokenSchema(Schema):
    token = fields.String()
    user_id = fields.Integer()
    label = fields.String()


class HealthSchema(Schema):
    status = fields.String()
    database = fields.String()


class DeadlineSchema(Schema):
    id = fields.Integer()
    instance_id = fields.String()
    name = fields.String()
    kind = fields.String()
    action = fields.String()
    role = fields.String(allow_none=True)
    due_at = fields.DateTime()
    state = fields.String()
    rule = fields.Dict()
    attempts = fields.Integer()
    created_at = fields.DateTime()
    closed_at = fields.DateTime(allow_none=True)


class DeadlineListArgs(PageArgs):
    kind = fields.String(validate=validate.OneOf(DEADLINE_KINDS))
    before = fields.AwareDateTime()


class DeadlinePageSchema(PageSchema):
    items = fields.List(fields.Nested(DeadlineSchema))


class DeadlineListSchema(Schema):
    items = fields.List(fields.Nested(DeadlineSchema))
