"""The database models; importing this package registers every table."""

from app.models.audit import AuditEvent
from app.models.breaches import Breach
from app.models.consent import (
    Consent,
    ConsentEvent,
    ConsentIdentity,
    ConsentNotice,
    ConsentPurpose,
)
from app.models.deadlines import Deadline
from app.models.definitions import DefinitionVersion, FormVersion, ProcessDefinition
from app.models.dpia import Dpia
from app.models.erasure import ErasureEntry, Restriction
from app.models.identity import ApiToken, User
from app.models.instances import HumanTask, Instance, Subscription
from app.models.integrations import (
    OutboundDelivery,
    OutboundEvent,
    Subscriber,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models.letters import Letter, LetterTemplate, MailAttachment, MailMessage
from app.models.privacy_notices import PrivacyNotice
from app.models.registry import Category, Entity, Field, Purpose, System
from app.models.retention import LegalHold, RetentionApplied, RetentionRun
from app.models.subject_requests import SubjectRequest, Suppression

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Breach",
    "Category",
    "Consent",
    "ConsentEvent",
    "ConsentIdentity",
    "ConsentNotice",
    "ConsentPurpose",
    "Deadline",
    "DefinitionVersion",
    "Dpia",
    "Entity",
    "ErasureEntry",
    "Field",
    "FormVersion",
    "HumanTask",
    "Instance",
    "LegalHold",
    "Letter",
    "LetterTemplate",
    "MailAttachment",
    "MailMessage",
    "OutboundDelivery",
    "OutboundEvent",
    "PrivacyNotice",
    "ProcessDefinition",
    "Purpose",
    "Restriction",
    "RetentionApplied",
    "RetentionRun",
    "SubjectRequest",
    "Subscriber",
    "Subscription",
    "Suppression",
    "System",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
]
