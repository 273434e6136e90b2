"""Data protection impact assessments (Art 35) and prior consultations (Art 36)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.types import UtcDateTime, utcnow

# Art 35(3): the cases in which an assessment is always required.
ART_35_3 = {
    "a": "Art 35(3)(a): systematic and extensive evaluation with automated decisions",
    "b": "Art 35(3)(b): large-scale special categories or criminal-offence data",
    "c": "Art 35(3)(c): systematic monitoring of a publicly accessible area at scale",
}
# The WP29 guidelines (WP248 rev.01, endorsed by the EDPB): two or more, assess.
CRITERIA = {
    "evaluation_or_scoring": "Evaluation or scoring",
    "automated_decision": "Automated decision with legal or similar effect",
    "systematic_monitoring": "Systematic monitoring",
    "sensitive_data": "Sensitive data or data of a highly personal nature",
    "large_scale": "Data processed on a large scale",
    "matching_datasets": "Matching or combining datasets",
    "vulnerable_subjects": "Data concerning vulnerable data subjects",
    "innovative_technology": "Innovative use or new technology",
    "prevents_rights": "Prevents exercising a right or using a service or contract",
}
# The necessity and proportionality the assessment must address (Art 35(7)(b), (d)).
NECESSITY_PARTS = (
    "lawful_basis",
    "purpose_limitation",
    "data_minimisation",
    "retention",
    "information_to_subjects",
    "rights",
    "processors",
    "transfers",
)
PROCEED, PROCEED_WITH_CHANGES, DO_NOT_PROCEED = (
    "proceed",
    "proceed_with_changes",
    "do_not_proceed",
)
DECISIONS = (PROCEED, PROCEED_WITH_CHANGES, DO_NOT_PROCEED)

SCREENING, NOT_REQUIRED, ASSESSMENT, OPINION = (
    "screening",
    "not_required",
    "assessment",
    "opinion",
)
DECISION, CONSULTATION, CONCLUDED = "decision", "consultation", "concluded"
STATUSES = (
    SCREENING,
    NOT_REQUIRED,
    ASSESSMENT,
    OPINION,
    DECISION,
    CONSULTATION,
    CONCLUDED,
)


class Dpia(db.Model):
    """One assessment of one purpose's processing, reviewed in rounds."""

    __tablename__ = "dpias"
    __table_args__ = (Index("ix_dpias_review_due", "review_due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    instance_id: Mapped[str | None] = mapped_column(
        ForeignKey("instances.id", ondelete="SET NULL"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default=SCREENING)
    round: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    # Art 35(7)(a): the processing as the registry describes it at screening.
    processing: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    screening: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    assessment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    opinion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Art 36: the consultation as filed, its extension and the advice received.
    consultation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    concluded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Art 35(11): when the assessment comes back for review.
    review_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Earlier rounds, as they stood when the review reopened the assessment.
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    letters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
