"""Answering each right of a data-subject request: the reply and what changed.

Each step returns the `reply` the process sends: the letter's template and
values, its attachments, and the recipients who must hear of a change (Art 19).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from app.errors import Unprocessable
from app.extensions import db
from app.models import Field, Suppression
from app.services import (
    audit,
    connectors,
    context,
    erasure,
    registry,
    restrictions,
    subject_requests,
    subjects,
    task_data,
)
from app.services.operators import as_operator
from app.services.restrictions import RESTRICTION_GROUNDS

DIRECT_MARKETING = "direct_marketing"


def _subject(identities: Any) -> connectors.Subject:
    if not isinstance(identities, dict) or not identities:
        raise subject_requests.invalid(
            "subject",
            "No identities.",
            "The request names no subject.",
            "subject-identity-missing",
        )
    return connectors.locate({str(k): str(v) for k, v in identities.items()})


def _reply(
    outcome: str,
    template: str,
    values: dict[str, Any],
    attach: list[str],
    recipients: list[Any],
) -> dict[str, Any]:
    """What the process sends: the letter, its values and attachments, and who
    else must hear of the change (Art 19)."""
    return {
        "outcome": outcome,
        "template": template,
        "values": {"recipients": [], **values},
        "attach": attach,
        "recipients": recipients,
    }


def refuse(request: dict[str, Any]) -> dict[str, Any]:
    """The refusal (Art 12(4)) or the declining (Art 12(5)) letter's contents."""
    decision = request.get("decision")
    if decision not in ("refuse", "unfounded"):
        raise subject_requests.invalid(
            "decision",
            "Not a refusal.",
            "The request was not refused.",
            "not-refused",
        )
    template = "dsr_refusal" if decision == "refuse" else "dsr_unfounded"
    values = {"reasons": request.get("reasons", ""), "article": request["article"]}
    outcome = "refused" if decision == "refuse" else "unfounded"
    return _reply(outcome, template, values, [], [])


def access(identities: Any) -> dict[str, Any]:
    """Art 15: the information letter's contents; the copy goes as an attachment."""
    subject = _subject(identities)
    if not subject.matches:
        values = {"processing": False, "fields": []}
        return _reply("answered", "dsr_access_reply", values, [], [])
    report, copy = subjects.access_report(subject)
    subjects.record(
        "registry.subject_access_report",
        subject,
        copy,
        None,
        instance_id=context.current_instance_id(),
    )
    values = {key: value for key, value in report.items() if key != "copy"}
    attach = ["subject_export", "letter_pdf"]
    return _reply("answered", "dsr_access_reply", values, attach, [])


def portability(identities: Any) -> dict[str, Any]:
    """Art 20: which fields go, in JSON and CSV, as attachments."""
    subject = _subject(identities)
    portable = [row for row in subject.fields if row.portable]
    values = {
        "fields": [{"id": row.field_id, "name": row.name} for row in portable],
        "systems": sorted({row.entity.system.name for row in portable}),
    }
    attach = ["portability_export", "letter_pdf"] if portable else ["letter_pdf"]
    return _reply("answered", "dsr_portability_reply", values, attach, [])


def erasure_plan(identities: Any) -> list[dict[str, Any]]:
    """A plan to review: delete each field, unless the law makes us keep it."""
    subject = _subject(identities)
    steps = []
    for row in subject.fields:
        step = {"field": row.field_id, "name": row.name, "outcome": "delete"}
        if erasure.legal_hold(row):
            step.update(
                outcome="retain",
                ground="art_17_3_b",
                reason="Kept under a legal obligation ("
                + ", ".join(row.purposes)
                + ").",
            )
        steps.append(step)
    return steps


def erase(identities: Any, plan: Any, ground: str) -> dict[str, Any]:
    """Carry out the approved plan; the reply says what went, what stayed, and why."""
    if not isinstance(plan, list) or not plan:
        raise subject_requests.invalid(
            "plan", "An empty plan.", "The erasure plan names no field.", "plan-empty"
        )
    steps = {str(step.get("field")): _plan_step(step) for step in plan}
    result = erasure.erase({str(k): str(v) for k, v in identities.items()}, steps, None)
    names = {row.field_id: row for row in registry.find_fields(list(steps)).values()}
    done = _outcomes(result, plan, names)
    changed = [f for f, step in steps.items() if step["outcome"] != "retain"]
    values = {**done, "ground": ground, "failed": _failed(result)}
    return _reply("erased", "dsr_erasure_reply", values, [], recipients_of(changed))


def _plan_step(step: dict[str, Any]) -> dict[str, Any]:
    kept = {"outcome": step.get("outcome"), "ground": step.get("ground")}
    if step.get("lift_at"):
        kept["lift_at"] = _moment(step["lift_at"])
    return kept


def _outcomes(
    result: dict[str, Any], plan: list[dict[str, Any]], names: dict[str, Field]
) -> dict[str, list[dict[str, Any]]]:
    by_outcome: dict[str, list[dict[str, Any]]] = {
        "erased": [],
        "anonymised": [],
        "restricted": [],
        "retained": [],
    }
    label = {
        "delete": "erased",
        "anonymise": "anonymised",
        "restrict": "restricted",
        "retain": "retained",
    }
    applied = _applied(result)
    for step in plan:
        field_id = str(step["field"])
        if field_id not in applied:
            continue
        row = names.get(field_id)
        by_outcome[label[step["outcome"]]].append(
            {
                "field": field_id,
                "name": row.name if row else field_id,
                "ground": step.get("ground"),
                "reason": step.get("reason"),
                "lift_at": step.get("lift_at"),
            }
        )
    return by_outcome


def _applied(result: dict[str, Any]) -> set[str]:
    return {
        field_id
        for system in result["systems"].values()
        if system["status"] == "erased"
        for field_id in system["fields"]
    }


def _failed(result: dict[str, Any]) -> list[str]:
    return sorted(
        key for key, system in result["systems"].items() if system["status"] != "erased"
    )


def recipients_of(field_ids: list[str]) -> list[dict[str, Any]]:
    """Art 19: every recipient the changed fields were disclosed to, once each."""
    found = registry.find_fields(field_ids)
    systems = {system.key: system for system in registry.list_systems()}
    recipients: dict[str, dict[str, Any]] = {}
    for field_id in sorted(found):
        for recipient in found[field_id].recipients:
            key = recipient.get("system") or recipient["name"]
            name = systems[key].name if key in systems else recipient["name"]
            entry = recipients.setdefault(key, {"key": key, "name": name, "fields": []})
            entry["fields"].append(field_id)
    return list(recipients.values())


def rectify(
    identities: Any, corrections: Any, reasons: str | None = None
) -> dict[str, Any]:
    """Art 16: write the corrected values to the systems; the reply names fields."""
    if not isinstance(corrections, list):
        corrections = []
    values = {str(item["field"]): item.get("value") for item in corrections}
    known = registry.find_fields(list(values))
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise Unprocessable(
            "Some corrections name no registry field; nothing was changed.",
            code="field-unknown",
            errors=[
                {"field": f"corrections.{f}", "message": "Not in the registry."}
                for f in unknown
            ],
        )
    ids = {str(k): str(v) for k, v in identities.items()}
    systems = task_data.write_values(ids, values) if values else []
    audit.record(
        "registry.subject_rectified",
        instance_id=context.current_instance_id(),
        identity_keys=sorted(ids),
        systems=systems,
        fields=sorted(values),
    )
    corrected = [{"field": f, "name": known[f].name} for f in sorted(values)]
    if not corrected and not (reasons or "").strip():
        raise subject_requests.invalid(
            "rectification_reasons",
            "Give the reasons.",
            "Correct at least one field, or give the reasons the data is accurate.",
            "reasons-missing",
        )
    return _reply(
        "rectified" if corrected else "not_rectified",
        "dsr_rectification_reply",
        {"corrected": corrected, "reasons": reasons or ""},
        [],
        recipients_of(sorted(values)),
    )


def restrict(
    identities: Any, ground: str, fields: Any = None, lift_at: Any = None
) -> dict[str, Any]:
    """Art 18: restrict the fields named (all when none); the reply says until when."""
    subject = _subject(identities)
    named = [str(f) for f in fields] if isinstance(fields, list) and fields else None
    until = _moment(lift_at)
    restrictions.restrict_subject(subject, named, ground, until, None)
    restricted = named or sorted(row.field_id for row in subject.fields)
    values = {
        "ground": ground,
        "article": RESTRICTION_GROUNDS[ground],
        "lift_at": until.isoformat() if until else None,
        "fields": _named(restricted),
    }
    recipients = recipients_of(restricted)
    return _reply("restricted", "dsr_restriction_reply", values, [], recipients)


def _moment(value: Any) -> datetime | None:
    return subject_requests.aware_time(value, "lift_at", "The restriction's end")


def _named(field_ids: list[str]) -> list[dict[str, str]]:
    known = registry.find_fields(field_ids)
    return [{"field": f, "name": known[f].name if f in known else f} for f in field_ids]


def object_to(
    identities: Any, direct_marketing: bool, upheld: bool, grounds: str | None = None
) -> dict[str, Any]:
    """Art 21: marketing stops always; other processing unless compelling grounds."""
    if not direct_marketing and not upheld and not (grounds or "").strip():
        raise subject_requests.invalid(
            "grounds",
            "State the compelling legitimate grounds.",
            "Art 21(1): processing may go on only on compelling legitimate grounds "
            "that override the subject's interests; state them.",
            "grounds-missing",
        )
    subject = _subject(identities)
    ids = {str(k): str(v) for k, v in identities.items()}
    if direct_marketing:
        _suppress(ids)
        stopped = _marketing_fields(subject)
        ground = "art_21_3"
    else:
        stopped = _objectable_fields(subject) if upheld else []
        ground = "art_21_1"
    if stopped:
        restrictions.restrict_subject(subject, stopped, ground, None, None)
    values = {
        "direct_marketing": bool(direct_marketing),
        "upheld": bool(direct_marketing or upheld),
        "grounds": grounds or "",
        "stopped": _named(stopped),
    }
    outcome = "objection_upheld" if values["upheld"] else "objection_refused"
    return _reply(outcome, "dsr_objection_reply", values, [], recipients_of(stopped))


def _marketing_fields(subject: connectors.Subject) -> list[str]:
    return sorted(
        row.field_id
        for row in subject.fields
        if any(purpose.startswith("marketing") for purpose in row.purposes)
    )


def _objectable_fields(subject: connectors.Subject) -> list[str]:
    return sorted(
        row.field_id
        for row in subject.fields
        if row.legal_basis in ("legitimate_interests", "public_task")
    )


def _suppress(identities: dict[str, str]) -> None:
    row = subject_requests.current_request()
    for kind, value in identities.items():
        digest = erasure.identity_hmac({kind: value})
        exists = db.session.scalar(
            select(Suppression.id).where(
                Suppression.identity_hmac == digest,
                Suppression.purpose == DIRECT_MARKETING,
            )
        )
        if exists is None:
            db.session.add(
                Suppression(
                    identity_hmac=digest, purpose=DIRECT_MARKETING, request_id=row.id
                )
            )
    audit.record(
        "request.marketing_suppressed",
        instance_id=row.instance_id,
        reference=row.reference,
        identity_keys=sorted(identities),
    )


def suppressed(identities: dict[str, str], purpose: str = DIRECT_MARKETING) -> bool:
    """Whether any of the identities objected to this purpose (Art 21(3))."""
    digests = [erasure.identity_hmac({k: v}) for k, v in identities.items()]
    found = db.session.scalar(
        select(func.count(Suppression.id)).where(
            Suppression.identity_hmac.in_(digests), Suppression.purpose == purpose
        )
    )
    return bool(found)


OPERATORS = {
    "requests.refuse": as_operator(refuse),
    "requests.access": as_operator(access),
    "requests.portability": as_operator(portability),
    "requests.erasure_plan": as_operator(erasure_plan),
    "requests.erase": as_operator(erase),
    "requests.rectify": as_operator(rectify),
    "requests.restrict": as_operator(restrict),
    "requests.object": as_operator(object_to),
}
