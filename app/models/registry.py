"""The personal-data registry: systems, their entities (tables) and fields."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

SYSTEM_ROLES = ("internal", "processor", "recipient", "joint_controller")
AGREEMENT_STATUSES = ("none", "draft", "signed", "expired")
ORIGINS = ("provided", "observed", "inferred")

LEGAL_BASES = {
    "consent": "Art 6(1)(a)",
    "contract": "Art 6(1)(b)",
    "legal_obligation": "Art 6(1)(c)",
    "vital_interests": "Art 6(1)(d)",
    "public_task": "Art 6(1)(e)",
    "legitimate_interests": "Art 6(1)(f)",
}
ART9_CONDITIONS = {
    "explicit_consent": "Art 9(2)(a)",
    "employment_social_security": "Art 9(2)(b)",
    "vital_interests": "Art 9(2)(c)",
    "not_for_profit_body": "Art 9(2)(d)",
    "made_public_by_subject": "Art 9(2)(e)",
    "legal_claims": "Art 9(2)(f)",
    "substantial_public_interest": "Art 9(2)(g)",
    "health_or_social_care": "Art 9(2)(h)",
    "public_health": "Art 9(2)(i)",
    "archiving_research_statistics": "Art 9(2)(j)",
}
# Chapter V: what a transfer outside the EEA rests on.
TRANSFER_SAFEGUARDS = {
    "adequacy_decision": "Art 45",
    "standard_contractual_clauses": "Art 46(2)(c)",
    "binding_corporate_rules": "Art 47",
    "derogation": "Art 49",
}
# Art 28(3): what a processor agreement sets out, each with its letter (None for
# the opening sentence's items) and a plain label.
AGREEMENT_TERMS = {
    "subject_matter_and_duration": (None, "Subject matter and duration"),
    "nature_and_purpose": (None, "Nature and purpose of the processing"),
    "data_and_subjects": (None, "Types of personal data and categories of subjects"),
    "documented_instructions": ("a", "Acts only on documented instructions"),
    "confidentiality": ("b", "Staff bound to confidentiality"),
    "security": ("c", "Takes the Art 32 security measures"),
    "sub_processors": ("d", "Engages sub-processors only with authorisation"),
    "data_subject_rights": ("e", "Assists with data-subject requests"),
    "compliance_assistance": ("f", "Assists with Arts 32-36 duties"),
    "deletion_or_return": ("g", "Deletes or returns the data at the end"),
    "audits": ("h", "Provides information and allows audits"),
}
# Art 20(1)(a): portability covers processing on consent or contract only.
PORTABLE_BASES = ("consent", "contract")
PORTABLE_ORIGINS = ("provided", "observed")


class Purpose(db.Model):
    """An organisation's own purpose, beside the Fides data uses."""

    __tablename__ = "registry_purposes"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    legal_basis: Mapped[str | None] = mapped_column(String(30))
    # Art 13(1)(d): the interest pursued where the purpose rests on Art 6(1)(f).
    legitimate_interest: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Category(db.Model):
    """An organisation's own data category, beside the Fides ones."""

    __tablename__ = "registry_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    special_category: Mapped[bool] = mapped_column(default=False)
    # Why the category falls under Art 9(1), such as trade-union membership.
    art9_basis_note: Mapped[str | None] = mapped_column(Text)
    # A Fides category or another organisation category's key.
    parent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class System(db.Model):
    """A system holding personal data: our own, a processor's or a recipient's."""

    __tablename__ = "registry_systems"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(200))
    location: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    role: Mapped[str] = mapped_column(String(20))
    agreement_status: Mapped[str] = mapped_column(String(10), default="none")
    agreement_signed_on: Mapped[date | None] = mapped_column(Date)
    agreement_reference: Mapped[str | None] = mapped_column(String(200))
    # Term key (AGREEMENT_TERMS) to whether the signed text contains it.
    agreement_terms: Mapped[dict[str, bool]] = mapped_column(JSON, default=dict)
    # [{"name": "Cloudhost Ltd", "country": "GB", "safeguard": "adequacy_decision"}]
    sub_processors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    # Art 32: a general description of the technical and organisational measures.
    security_measures: Mapped[str] = mapped_column(Text, default="")
    # For a system outside the EEA: a TRANSFER_SAFEGUARDS key and what it refers to.
    transfer_safeguard: Mapped[str | None] = mapped_column(String(40))
    transfer_note: Mapped[str | None] = mapped_column(Text)
    # An SQLAlchemy URL without a password, or `env:NAME` naming the variable that
    # holds one; None when the registry only describes the system.
    connection: Mapped[str | None] = mapped_column(String(500))
    # Art 5(1)(e) sweeps wait for the DPO's review of this system's rows unless off.
    retention_review: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    entities: Mapped[list[Entity]] = relationship(
        back_populates="system", cascade="all, delete-orphan", order_by="Entity.key"
    )


class Entity(db.Model):
    """A table (or collection) of a system, holding one category of data subject."""

    __tablename__ = "registry_entities"
    __table_args__ = (UniqueConstraint("system_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The unique (system_id, key) index also serves lookups by system.
    system_id: Mapped[int] = mapped_column(
        ForeignKey("registry_systems.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    subject_category: Mapped[str] = mapped_column(String(100))
    # The field (column) whose value identifies the data subject of a row.
    subject_key: Mapped[str] = mapped_column(String(60))
    # The table in the system's database; None means the entity's key.
    table: Mapped[str | None] = mapped_column("table_name", String(120))

    system: Mapped[System] = relationship(back_populates="entities")
    fields: Mapped[list[Field]] = relationship(
        back_populates="entity", cascade="all, delete-orphan", order_by="Field.key"
    )


class Field(db.Model):
    """One personal-data field, with everything Art 15(1) and Art 30 ask of it."""

    __tablename__ = "registry_fields"
    __table_args__ = (UniqueConstraint("entity_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entity_id: Mapped[int] = mapped_column(
        ForeignKey("registry_entities.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    data_category: Mapped[str] = mapped_column(String(255), index=True)
    purposes: Mapped[list[str]] = mapped_column(JSON, default=list)
    legal_basis: Mapped[str] = mapped_column(String(30))
    art9_condition: Mapped[str | None] = mapped_column(String(40))
    special_category: Mapped[bool] = mapped_column(default=False)
    origin: Mapped[str] = mapped_column(String(10))
    # {"period": "P7Y", "anchor": "invoice_date", "criterion": ...}; period may be null.
    retention: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # [{"system": "mailer"}, {"name": "Tax authority", "country": "NL"}]
    recipients: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    automated_decision: Mapped[bool] = mapped_column(default=False)
    automated_decision_logic: Mapped[str | None] = mapped_column(Text)
    # The column in the entity's table; None means the field's key.
    column: Mapped[str | None] = mapped_column("column_name", String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    entity: Mapped[Entity] = relationship(back_populates="fields")

    @property
    def field_id(self) -> str:
        """The full id, `system.entity.field`, that forms bind to."""
        return f"{self.entity.system.key}.{self.entity.key}.{self.key}"

    @property
    def portable(self) -> bool:
        """Within Art 20: provided or observed data, on consent or contract."""
        return self.origin in PORTABLE_ORIGINS and self.legal_basis in PORTABLE_BASES
