"""The database models; importing this package registers every table."""

from app.models.audit import AuditEvent
from app.models.definitions import DefinitionVersion, FormVersion, ProcessDefinition
from app.models.identity import ApiToken, User
from app.models.instances import HumanTask, Instance, Subscription

__all__ = [
    "ApiToken",
    "AuditEvent",
    "DefinitionVersion",
    "FormVersion",
    "HumanTask",
    "Instance",
    "ProcessDefinition",
    "Subscription",
    "User",
]
