"""Data protection impact assessments (Art 35) and prior consultation (Art 36).

A DPIA is screened, assessed, given the DPO's opinion and decided; a decision to
proceed despite a high residual risk requires the supervisory authority's advice.
Every round ends with a review date, after which the same DPIA is screened again.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import func, select

from app import clock
from app.errors import BadRequest, NotFound, Unprocessable
from app.extensions import db
from app.models import Deadline, Dpia, Instance
from app.models.deadlines import MET, PENDING
from app.models.dpia import (
    ART_35_3,
    ASSESSMENT,
    CONCLUDED,
    CONSULTATION,
    CRITERIA,
    DECISION,
    DECISIONS,
    DO_NOT_PROCEED,
    NECESSITY_PARTS,
    NOT_REQUIRED,
    OPINION,
    PROCEED_WITH_CHANGES,
    SCREENING,
)
from app.services import audit, context, deadlines, processing_record, registry
from app.services.operators import as_operator
from app.services.paging import Page, paginate

logger = logging.getLogger(__name__)

AUTHORITY_DEADLINE, REVIEW_DEADLINE = "authority_reply", "review"
ART_35_1, ART_35_2, ART_35_7 = "Art 35(1)", "Art 35(2)", "Art 35(7)"
ART_35_11, ART_36_1, ART_36_2, ART_36_3 = (
    "Art 35(11)",
    "Art 36(1)",
    "Art 36(2)",
    "Art 36(3)",
)
# Art 35(7)(c): risks scored likelihood x severity on scales of 1 to 4.
SCALE = range(1, 5)
HIGH, MEDIUM, LOW = "high", "medium", "low"
RISK_PARTS = ("source", "impact", "likelihood", "severity")
RESIDUAL_PARTS = ("residual_likelihood", "residual_severity")
# Art 36(3)(a)-(d); (e) is the DPIA itself, attached; (f) is optional.
CONSULTATION_PARTS = {
    "responsibilities": "Art 36(3)(a)",
    "purposes_and_means": "Art 36(3)(b)",
    "measures_and_safeguards": "Art 36(3)(c)",
    "dpo_contact": "Art 36(3)(d)",
}


def refusal(message: str, errors: list[dict[str, str]], code: str) -> Unprocessable:
    return Unprocessable(message, code=code, errors=errors)


def _error(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


# --- opening and describing --------------------------------------------------------


def known_purposes() -> set[str]:
    """Purposes the registry knows: declared ones and those its fields name."""
    keys = {purpose.key for purpose in registry.list_purposes()}
    return keys | {p for row in registry.list_fields() for p in row.purposes}


def _next_reference() -> str:
    prefix = f"DPIA-{clock.now().astimezone(_zone()).year}-"
    count = db.session.scalar(
        select(func.count()).where(Dpia.reference.like(f"{prefix}%"))
    )
    return f"{prefix}{(count or 0) + 1:04d}"


def open_dpia(instance_id: str, data: dict[str, Any]) -> Dpia:
    """Open a DPIA of one registry purpose; refuse a purpose the registry lacks."""
    errors = []
    purpose = data.get("purpose")
    if not isinstance(purpose, str) or purpose not in known_purposes():
        errors.append(_error("purpose", "is not a purpose in the registry"))
    if _text(data.get("title")) is None:
        errors.append(_error("title", "is required"))
    if errors:
        raise refusal(
            f"{ART_35_1}: a DPIA assesses one processing purpose of the registry.",
            errors,
            "dpia-start-invalid",
        )
    dpia = Dpia(
        reference=_next_reference(),
        instance_id=instance_id,
        purpose=purpose,
        title=_text(data["title"]),
        description=_text(data.get("description")) or "",
        status=SCREENING,
        history=[],
        letters=[],
    )
    db.session.add(dpia)
    db.session.flush()
    audit.record("dpia.opened", instance_id=instance_id, dpia_id=dpia.id)
    logger.info("opened %s for instance %s", dpia.reference, instance_id)
    return dpia


def describe(instance_id: str) -> dict[str, Any]:
    """Art 35(7)(a): the processing as the record of processing shows it now."""
    dpia = of_instance(instance_id)
    record = processing_record.record_of_processing()
    entry = next((p for p in record["purposes"] if p["key"] == dpia.purpose), None)
    if entry is None:
        raise NotFound(f"The purpose of {dpia.reference} is no longer in the registry.")
    dpia.processing = {key: value for key, value in entry.items() if key != "key"}
    dpia.processing["described_at"] = clock.now().isoformat()
    return {"purpose": dpia.purpose, **dpia.processing}


# --- finding -------------------------------------------------------------------------


def get_dpia(dpia_id: int) -> Dpia:
    dpia = db.session.get(Dpia, dpia_id)
    if dpia is None:
        raise NotFound(f"No DPIA with id {dpia_id}.")
    return dpia


def of_instance(instance_id: str) -> Dpia:
    """The DPIA an instance of the DPIA process is handling."""
    dpia = db.session.scalar(select(Dpia).where(Dpia.instance_id == instance_id))
    if dpia is None:
        raise NotFound("This instance has opened no DPIA.")
    return dpia


def list_dpias(
    *,
    purpose: str | None = None,
    status: str | None = None,
    page: int = 1,
    size: int = 50,
) -> Page:
    """The register of DPIAs, newest first."""
    query = select(Dpia)
    if purpose:
        query = query.where(Dpia.purpose == purpose)
    if status:
        query = query.where(Dpia.status == status)
    return paginate(query, (Dpia.created_at.desc(), Dpia.id.desc()), page, size)


# --- screening -----------------------------------------------------------------------


def _keys(value: Any, allowed: dict[str, str], field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(v in allowed for v in value):
        raise refusal(
            f"{ART_35_1}: the screening names only the listed cases and criteria.",
            [_error(field, f"must list only: {', '.join(allowed)}")],
            "dpia-screening-invalid",
        )
    return sorted(set(value))


def screen(instance_id: str, art35_3: Any, criteria: Any, reasons: Any) -> Dpia:
    """Any Art 35(3) case, or two or more criteria, requires the assessment."""
    dpia = of_instance(instance_id)
    cases = _keys(art35_3, ART_35_3, "art35_3")
    met = _keys(criteria, CRITERIA, "criteria")
    if _text(reasons) is None:
        raise refusal(
            f"{ART_35_1}: the screening's conclusion is recorded with its reasons.",
            [_error("reasons", "is required")],
            "dpia-screening-invalid",
        )
    required = bool(cases) or len(met) >= 2
    dpia.screening = {
        "art35_3": cases,
        "criteria": met,
        "reasons": _text(reasons),
        "required": required,
        "screened_at": clock.now().isoformat(),
    }
    dpia.status = ASSESSMENT if required else NOT_REQUIRED
    audit.record(
        "dpia.screened",
        instance_id=instance_id,
        dpia_id=dpia.id,
        required=required,
        art35_3=cases,
        criteria=met,
    )
    return dpia


# --- the assessment ------------------------------------------------------------------


def level(likelihood: int, severity: int) -> str:
    """Likelihood x severity: 8 and above is high, 4 to 6 medium, below that low."""
    score = likelihood * severity
    return HIGH if score >= 8 else MEDIUM if score >= 4 else LOW


def _score(risk: dict[str, Any], name: str, where: str) -> list[dict[str, str]]:
    value = risk.get(name)
    if isinstance(value, bool) or value not in SCALE:
        return [_error(f"{where}.{name}", "is required, a whole number from 1 to 4")]
    return []


def _risk_errors(risk: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(risk, dict):
        return [_error(where, "must be an object")]
    errors = [
        _error(f"{where}.{name}", "is required")
        for name in ("source", "impact")
        if _text(risk.get(name)) is None
    ]
    for name in ("likelihood", "severity", *RESIDUAL_PARTS):
        errors += _score(risk, name, where)
    measures = risk.get("measures")
    if not isinstance(measures, list) or not [m for m in measures if _text(m)]:
        errors.append(_error(f"{where}.measures", "needs at least one measure"))
    return errors


def _assessment_errors(necessity: Any, risks: Any) -> list[dict[str, str]]:
    given = necessity if isinstance(necessity, dict) else {}
    errors = [
        _error(f"necessity.{part}", "is required")
        for part in NECESSITY_PARTS
        if _text(given.get(part)) is None
    ]
    if not isinstance(risks, list) or not risks:
        return [*errors, _error("risks", "needs at least one risk to the subjects")]
    for index, risk in enumerate(risks):
        errors += _risk_errors(risk, f"risks.{index}")
    return errors


def _scored(risk: dict[str, Any]) -> dict[str, Any]:
    measures = [_text(m) for m in risk["measures"] if _text(m)]
    return {
        "source": _text(risk["source"]),
        "impact": _text(risk["impact"]),
        "likelihood": risk["likelihood"],
        "severity": risk["severity"],
        "level": level(risk["likelihood"], risk["severity"]),
        "measures": measures,
        "residual_likelihood": risk["residual_likelihood"],
        "residual_severity": risk["residual_severity"],
        "residual_level": level(risk["residual_likelihood"], risk["residual_severity"]),
    }


def assess(instance_id: str, necessity: Any, risks: Any) -> Dpia:
    """Record necessity, proportionality and the scored risks with their measures."""
    dpia = of_instance(instance_id)
    errors = _assessment_errors(necessity, risks)
    if errors:
        raise refusal(
            f"{ART_35_7}: the assessment contains the necessity and proportionality "
            "of the processing, the risks to the subjects and the measures against "
            "each risk.",
            errors,
            "dpia-assessment-incomplete",
        )
    scored = [_scored(risk) for risk in risks]
    dpia.assessment = {
        "necessity": {part: _text(necessity[part]) for part in NECESSITY_PARTS},
        "risks": scored,
        "high_residual_risk": any(r["residual_level"] == HIGH for r in scored),
        "assessed_at": clock.now().isoformat(),
    }
    dpia.status = OPINION
    audit.record(
        "dpia.assessed",
        instance_id=instance_id,
        dpia_id=dpia.id,
        risks=len(scored),
        high_residual_risk=dpia.assessment["high_residual_risk"],
    )
    return dpia


# --- opinion and decision ------------------------------------------------------------


def give_opinion(instance_id: str, opinion: Any, recommendation: Any) -> Dpia:
    """Art 35(2): the advice of the data protection officer, kept with the DPIA."""
    dpia = of_instance(instance_id)
    errors = []
    if _text(opinion) is None:
        errors.append(_error("opinion", "is required"))
    if recommendation not in DECISIONS:
        errors.append(
            _error("recommendation", f"must be one of: {', '.join(DECISIONS)}")
        )
    if errors:
        raise refusal(
            f"{ART_35_2}: the controller seeks the advice of the DPO.",
            errors,
            "dpia-opinion-incomplete",
        )
    dpia.opinion = {
        "opinion": _text(opinion),
        "recommendation": recommendation,
        "given_at": clock.now().isoformat(),
    }
    dpia.status = DECISION
    audit.record(
        "dpia.opinion_given",
        instance_id=instance_id,
        dpia_id=dpia.id,
        recommendation=recommendation,
    )
    return dpia


def _decision_errors(decision: Any, reasons: Any, changes: Any) -> list[dict]:
    if decision not in DECISIONS:
        return [_error("decision", f"must be one of: {', '.join(DECISIONS)}")]
    errors = [] if _text(reasons) else [_error("reasons", "is required")]
    if decision == PROCEED_WITH_CHANGES and _text(changes) is None:
        errors.append(_error("changes", "is required to proceed with changes"))
    return errors


def decide(instance_id: str, decision: Any, reasons: Any, changes: Any = None) -> Dpia:
    """The controller's decision; proceeding at a high residual risk means Art 36."""
    dpia = of_instance(instance_id)
    errors = _decision_errors(decision, reasons, changes)
    if errors:
        raise refusal(
            "The controller decides whether, and how, the processing goes ahead.",
            errors,
            "dpia-decision-incomplete",
        )
    high = bool(dpia.assessment and dpia.assessment["high_residual_risk"])
    required = high and decision != DO_NOT_PROCEED
    dpia.decision = {
        "decision": decision,
        "reasons": _text(reasons),
        "changes": _text(changes),
        "follows_dpo": dpia.opinion is not None
        and dpia.opinion["recommendation"] == decision,
        "consultation_required": required,
        "decided_at": clock.now().isoformat(),
    }
    dpia.status = CONSULTATION if required else DECISION
    audit.record(
        "dpia.decided",
        instance_id=instance_id,
        dpia_id=dpia.id,
        decision=decision,
        consultation_required=required,
    )
    return dpia


# --- prior consultation (Art 36) -----------------------------------------------------


def _day(value: Any, field: str, article: str) -> date:
    try:
        day = date.fromisoformat(str(value))
    except ValueError:
        raise refusal(
            f"{article}: the date is required (YYYY-MM-DD).",
            [_error(field, "is required, a date (YYYY-MM-DD)")],
            "dpia-consultation-invalid",
        ) from None
    if day > clock.now().astimezone(_zone()).date():
        raise refusal(
            f"{article}: a date the authority's period runs from cannot lie ahead.",
            [_error(field, "cannot be in the future")],
            "dpia-consultation-invalid",
        )
    return day


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=_zone())


def file_consultation(
    instance_id: str, filed_on: Any, authority_reference: Any, values: dict[str, Any]
) -> Dpia:
    """Record the consultation filed with the Art 36(3) information."""
    dpia = of_instance(instance_id)
    missing = [name for name in CONSULTATION_PARTS if _text(values.get(name)) is None]
    if missing:
        raise refusal(
            f"{ART_36_3}: the consultation gives the responsibilities, the purposes "
            "and means, the measures and safeguards and the DPO's contact details.",
            [_error(n, f"is required ({CONSULTATION_PARTS[n]})") for n in missing],
            "dpia-consultation-incomplete",
        )
    day = _day(filed_on, "filed_on", ART_36_1)
    dpia.consultation = {
        **{name: _text(values[name]) for name in CONSULTATION_PARTS},
        "other_information": _text(values.get("other_information")),
        "filed_on": day.isoformat(),
        "filed_at": _start_of(day).isoformat(),
        "authority_reference": _text(authority_reference),
        "extension": None,
        "advice": None,
    }
    audit.record("dpia.consultation_filed", instance_id=instance_id, dpia_id=dpia.id)
    return dpia


def _consultation(dpia: Dpia) -> dict[str, Any]:
    if dpia.consultation is None:
        raise refusal(
            f"{ART_36_2}: this DPIA has no prior consultation filed.",
            [_error("consultation", "has not been filed")],
            "dpia-no-consultation",
        )
    return dpia.consultation


def record_extension(instance_id: str, notice: Any) -> Dpia:
    """Art 36(2): the authority extends once, by six weeks, giving its reasons."""
    dpia = of_instance(instance_id)
    consultation = _consultation(dpia)
    given = notice if isinstance(notice, dict) else {}
    if consultation["extension"] is not None:
        raise refusal(
            f"{ART_36_2}: the period may be extended once, by six weeks.",
            [_error("extension", "has already been recorded")],
            "dpia-extension-repeated",
        )
    if _text(given.get("reasons")) is None:
        raise refusal(
            f"{ART_36_2}: the authority informs the controller of an extension "
            "together with the reasons for the delay.",
            [_error("reasons", "is required")],
            "dpia-extension-incomplete",
        )
    day = _day(given.get("notified_on"), "notified_on", ART_36_2)
    extension = {"notified_on": day.isoformat(), "reasons": _text(given["reasons"])}
    dpia.consultation = {**consultation, "extension": extension}
    audit.record("dpia.consultation_extended", instance_id=instance_id, dpia_id=dpia.id)
    return dpia


def record_advice(instance_id: str, advice: Any) -> Dpia:
    """The authority's written advice ends the consultation and meets its deadline."""
    dpia = of_instance(instance_id)
    consultation = _consultation(dpia)
    given = advice if isinstance(advice, dict) else {}
    if _text(given.get("summary")) is None:
        raise refusal(
            f"{ART_36_2}: record what the authority's written advice says.",
            [_error("summary", "is required")],
            "dpia-advice-incomplete",
        )
    day = _day(given.get("received_on"), "received_on", ART_36_2)
    received = {"received_on": day.isoformat(), "summary": _text(given["summary"])}
    dpia.consultation = {**consultation, "advice": received}
    _close(instance_id, AUTHORITY_DEADLINE)
    audit.record("dpia.advice_received", instance_id=instance_id, dpia_id=dpia.id)
    return dpia


def _close(instance_id: str, name: str) -> None:
    pending = db.session.scalar(
        select(Deadline).where(
            Deadline.instance_id == instance_id,
            Deadline.name == name,
            Deadline.state == PENDING,
        )
    )
    if pending is not None:
        deadlines.close(instance_id, name, MET)


# --- conclusion and review -----------------------------------------------------------


def schedule_review(instance_id: str) -> Dpia:
    """Art 35(11): conclude the round and set the date it is reviewed."""
    dpia = of_instance(instance_id)
    now = clock.now()
    if dpia.status != NOT_REQUIRED:
        dpia.status = CONCLUDED
    dpia.concluded_at = now
    review = deadlines.set_deadline(
        instance_id,
        REVIEW_DEADLINE,
        start=now.isoformat(),
        period=current_app.config["DPIA_REVIEW_PERIOD"],
        kind="internal_target",
        article=ART_35_11,
        role="privacy_officer",
    )
    dpia.review_due_at = review.due_at
    audit.record(
        "dpia.concluded",
        instance_id=instance_id,
        dpia_id=dpia.id,
        status=dpia.status,
        review_due_at=review.due_at.isoformat(),
    )
    logger.info(
        "%s concluded (%s); review %s", dpia.reference, dpia.status, review.due_at
    )
    return dpia


ROUND_FIELDS = ("processing", "screening", "assessment", "opinion", "decision")


def reopen(instance_id: str) -> Dpia:
    """The review date came: keep the round in the history and screen again."""
    dpia = of_instance(instance_id)
    _close(instance_id, REVIEW_DEADLINE)
    finished = {name: getattr(dpia, name) for name in ROUND_FIELDS}
    finished.update(
        round=dpia.round,
        status=dpia.status,
        consultation=dpia.consultation,
        concluded_at=_iso(dpia.concluded_at),
        review_due_at=_iso(dpia.review_due_at),
    )
    dpia.history = [*dpia.history, finished]
    for name in (*ROUND_FIELDS, "consultation", "concluded_at"):
        setattr(dpia, name, None)
    dpia.round, dpia.status = dpia.round + 1, SCREENING
    audit.record("dpia.review_started", instance_id=instance_id, dpia_id=dpia.id)
    logger.info("%s back for review, round %s", dpia.reference, dpia.round)
    return dpia


def record_letter(instance_id: str, kind: str, letter_id: str) -> Dpia:
    """Note a letter written for the DPIA (the prior consultation)."""
    dpia = of_instance(instance_id)
    entry = {"kind": kind, "letter_id": letter_id, "at": clock.now().isoformat()}
    dpia.letters = [*dpia.letters, entry]
    return dpia


# --- the register entry --------------------------------------------------------------


def _authority_deadline(dpia: Dpia) -> dict[str, Any] | None:
    row = db.session.scalar(
        select(Deadline).where(
            Deadline.instance_id == dpia.instance_id,
            Deadline.name == AUTHORITY_DEADLINE,
        )
    )
    if row is None:
        return None
    return {"due_at": row.due_at.isoformat(), "state": row.state}


def entry(dpia: Dpia) -> dict[str, Any]:
    """The register entry as the API shows it."""
    return {
        "id": dpia.id,
        "reference": dpia.reference,
        "instance_id": dpia.instance_id,
        "purpose": dpia.purpose,
        "title": dpia.title,
        "description": dpia.description,
        "status": dpia.status,
        "round": dpia.round,
        "created_at": _iso(dpia.created_at),
        "processing": dpia.processing,
        "screening": dpia.screening,
        "assessment": dpia.assessment,
        "opinion": dpia.opinion,
        "decision": dpia.decision,
        "consultation": dpia.consultation,
        "authority_deadline": _authority_deadline(dpia),
        "concluded_at": _iso(dpia.concluded_at),
        "review_due_at": _iso(dpia.review_due_at),
        "history": dpia.history,
        "letters": dpia.letters,
    }


# --- service-task operators ----------------------------------------------------------


def open_operator(data: dict[str, Any]) -> dict[str, Any]:
    """Open the DPIA from the start data: purpose, title, description."""
    instance_id = context.current_instance_id()
    dpia = open_dpia(instance_id, data)
    instance = db.session.get(Instance, instance_id)
    if instance is not None and not instance.business_key:
        instance.business_key = dpia.reference
    return {"dpia_id": dpia.id, "reference": dpia.reference, "purpose": dpia.purpose}


def describe_operator() -> dict[str, Any]:
    """The processing's description from the registry, for the assessor to read."""
    return describe(context.current_instance_id())


def screen_operator(art35_3: Any, criteria: Any, reasons: Any) -> dict[str, Any]:
    """Record the screening; returns whether an assessment is required."""
    dpia = screen(context.current_instance_id(), art35_3, criteria, reasons)
    return {"required": dpia.screening["required"], "round": dpia.round}


def assess_operator(necessity: Any, risks: Any) -> dict[str, Any]:
    """Record the assessment; returns the scored risks."""
    dpia = assess(context.current_instance_id(), necessity, risks)
    return {
        "risks": dpia.assessment["risks"],
        "high_residual_risk": dpia.assessment["high_residual_risk"],
    }


def opinion_operator(opinion: Any, recommendation: Any) -> dict[str, Any]:
    """Record the DPO's opinion."""
    dpia = give_opinion(context.current_instance_id(), opinion, recommendation)
    return {"recommendation": dpia.opinion["recommendation"]}


def decide_operator(decision: Any, reasons: Any, changes: Any = None) -> dict:
    """Record the decision; returns whether prior consultation is required."""
    dpia = decide(context.current_instance_id(), decision, reasons, changes)
    return {
        "decision": dpia.decision["decision"],
        "consultation_required": dpia.decision["consultation_required"],
    }


def consult_operator(
    filed_on: Any, authority_reference: Any = None, **values: Any
) -> dict[str, Any]:
    """Record the filed consultation; returns the values its letter shows."""
    dpia = file_consultation(
        context.current_instance_id(), filed_on, authority_reference, values
    )
    return {
        **dpia.consultation,
        "reference": dpia.reference,
        "title": dpia.title,
        "purpose": dpia.purpose,
        "risks": dpia.assessment["risks"] if dpia.assessment else [],
        "decision": dpia.decision["decision"] if dpia.decision else None,
    }


def extension_operator(notice: Any) -> dict[str, Any]:
    """Record the authority's extension notice."""
    dpia = record_extension(context.current_instance_id(), notice)
    return dpia.consultation["extension"]


def advice_operator(advice: Any) -> dict[str, Any]:
    """Record the authority's written advice."""
    dpia = record_advice(context.current_instance_id(), advice)
    return dpia.consultation["advice"]


def review_operator() -> dict[str, Any]:
    """Conclude the round; returns the review date a timer waits for."""
    dpia = schedule_review(context.current_instance_id())
    return {"due_at": dpia.review_due_at.isoformat(), "status": dpia.status}


def reopen_operator() -> dict[str, Any]:
    """Start the review round."""
    dpia = reopen(context.current_instance_id())
    return {"round": dpia.round, "status": dpia.status}


def record_letter_operator(kind: str, letter: Any) -> dict[str, Any]:
    """Note in the register a letter `letters.write` returned."""
    letter_id = letter.get("letter_id") if isinstance(letter, dict) else None
    if not letter_id:
        raise BadRequest("The parameter 'letter' holds no letter_id.")
    record_letter(context.current_instance_id(), str(kind), str(letter_id))
    return {"kind": kind, "letter_id": letter_id}


OPERATORS = {
    "dpia.describe": as_operator(describe_operator),
    "dpia.screen": as_operator(screen_operator),
    "dpia.assess": as_operator(assess_operator),
    "dpia.opinion": as_operator(opinion_operator),
    "dpia.decide": as_operator(decide_operator),
    "dpia.consult": as_operator(consult_operator),
    "dpia.extension": as_operator(extension_operator),
    "dpia.advice": as_operator(advice_operator),
    "dpia.schedule_review": as_operator(review_operator),
    "dpia.reopen": as_operator(reopen_operator),
    "dpia.record_letter": as_operator(record_letter_operator),
}
# The description at the start is optional, so opening reads the start data.
DATA_OPERATORS = {"dpia.open": as_operator(open_operator)}
