"""Registry pages: the field catalogue, where a field is used, a subject lookup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request, url_for

from app.countries import third_country
from app.errors import NotFound, Unprocessable
from app.extensions import db
from app.models import Field
from app.models.registry import ART9_CONDITIONS, LEGAL_BASES
from app.services import connectors, registry, subjects, usage
from app.services.privacy_notices import duration_text
from app.web.auth import current_web_user, roles_required

bp = Blueprint("web_registry", __name__)

# The API's registry readers (app/api/registry.py) and subject officers
# (app/api/subjects.py).
READERS = ("dpo", "privacy_officer", "admin", "process_designer")
SUBJECT_OFFICERS = ("dpo", "privacy_officer")
IDENTIFIER_KINDS = {
    "email": "E-mail address",
    "unique_id": "Employee or customer number",
    "phone": "Telephone number",
    "national_id": "National id number (BSN)",
}
ORIGINS = {
    "provided": "Provided by the subject",
    "observed": "Observed",
    "inferred": "Inferred",
}
SYSTEM_ROLES = {
    "internal": "Our own system",
    "processor": "Processor",
    "recipient": "Recipient",
    "joint_controller": "Joint controller",
}
LONGEST_IDENTIFIER = 320


# --- the catalogue ------------------------------------------------------------------


@bp.get("/registry")
@roles_required(*READERS)
def fields() -> Any:
    filters = _catalogue_filters()
    rows = registry.list_fields(**filters)
    every_field = registry.list_fields()
    systems = registry.list_systems()
    return render_template(
        "web/registry_fields.html",
        filters=filters,
        groups=_by_entity(rows),
        systems=systems,
        outside_eea={s.key for s in systems if third_country(s.country)},
        categories=_category_choices(every_field),
        purposes=registry.purpose_names(registry.purposes_in_use()),
        describe=_describer(rows),
        roles=SYSTEM_ROLES,
        filtered=any(value for value in filters.values()),
    )


def _catalogue_filters() -> dict[str, Any]:
    args = request.args
    return {
        "system": args.get("system", "").strip() or None,
        "category": args.get("category", "").strip() or None,
        "purpose": args.get("purpose", "").strip() or None,
        "special": True if args.get("special") else None,
    }


def _by_entity(rows: list[Field]) -> list[dict[str, Any]]:
    """The fields in the order listed, one group per system and entity."""
    groups: list[dict[str, Any]] = []
    for row in rows:
        if not groups or groups[-1]["entity"] is not row.entity:
            groups.append(
                {"system": row.entity.system, "entity": row.entity, "fields": []}
            )
        groups[-1]["fields"].append(row)
    return groups


def _category_choices(rows: list[Field]) -> dict[str, str]:
    """Every category a field names and each category above it, by key."""
    keys = set()
    for row in rows:
        parts = row.data_category.split(".")
        keys.update(".".join(parts[:end]) for end in range(2, len(parts) + 1))
    return registry.category_names(sorted(keys))


def _describer(rows: list[Field]) -> dict[str, Any]:
    """The names and articles the page shows beside the fields' keys."""
    return {
        "categories": registry.category_names({r.data_category for r in rows}),
        "purposes": registry.purpose_names({p for r in rows for p in r.purposes}),
        "legal_bases": LEGAL_BASES,
        "art9": ART9_CONDITIONS,
        "origins": ORIGINS,
        "duration": duration_text,
        "recipients": {
            r.field_id: usage.describe_recipients(r.recipients) for r in rows
        },
    }


# --- where a field is used ----------------------------------------------------------


@bp.get("/registry/fields/<field_id>")
@roles_required(*READERS)
def field(field_id: str) -> Any:
    used = usage.where_used(field_id)
    row = used["field"]
    return render_template(
        "web/registry_field.html",
        used=used,
        row=row,
        describe=_describer([row]),
        roles=SYSTEM_ROLES,
        designer_url=_designer_url(),
    )


def _designer_url() -> str | None:
    if "web_designer.definitions" not in current_app.view_functions:
        return None
    if not current_web_user().has_role("process_designer", "admin"):
        return None
    return url_for("web_designer.definitions")


# --- a subject lookup for one purpose -----------------------------------------------


# The lookup writes an audit event, so it is a POST with CSRF; the answer is the page.
@bp.route("/registry/subjects", methods=["GET", "POST"], endpoint="subjects")
@roles_required(*SUBJECT_OFFICERS)
def subjects_lookup() -> Any:
    purposes = registry.purpose_names(registry.purposes_in_use())
    asked = {
        "kind": request.form.get("kind", "email"),
        "identifier": request.form.get("identifier", "").strip(),
        "purpose": request.form.get("purpose", ""),
    }
    page = {"purposes": purposes, "kinds": IDENTIFIER_KINDS, "asked": asked}
    if request.method == "GET":
        return render_template("web/registry_subject.html", **page)

    problem = _lookup_problem(asked, purposes)
    if problem:
        return render_template(
            "web/registry_subject.html", message=problem, **page
        ), 422
    try:
        subject = subjects.find({asked["kind"]: asked["identifier"]})
    except NotFound:
        message = "No connected system holds anyone with that identifier."
        return render_template(
            "web/registry_subject.html", message=message, **page
        ), 404
    except Unprocessable as refusal:
        # No connected entity is searched by this kind of identifier.
        return render_template(
            "web/registry_subject.html", message=refusal.detail, **page
        ), 422
    copy = subjects.read_for_purpose(subject, asked["purpose"])
    subjects.record(
        "registry.subject_looked_up",
        subject,
        copy,
        current_web_user().id,
        purpose=asked["purpose"],
    )
    result = _result(subject, copy, asked["purpose"])
    db.session.commit()
    return render_template(
        "web/registry_subject.html", result=result, found_in=subject.systems, **page
    )


def _lookup_problem(asked: dict[str, str], purposes: dict[str, str]) -> str | None:
    if asked["kind"] not in IDENTIFIER_KINDS:
        return "Choose the kind of identifier you are entering."
    if not asked["identifier"]:
        return "Enter the identifier to look the person up by."
    if len(asked["identifier"]) > LONGEST_IDENTIFIER:
        return f"An identifier is at most {LONGEST_IDENTIFIER} characters long."
    if asked["purpose"] not in purposes:
        return "Choose the purpose this lookup is for."
    return None


def _result(
    subject: connectors.Subject, copy: connectors.Copy, purpose: str
) -> list[dict[str, Any]]:
    """Per entity the subject is in: the purpose's fields and each row's values."""
    withheld = {
        (held["system"], held["entity"], held["row"], held["field"]): held
        for held in copy.withheld
    }
    found = []
    for match in subject.matches:
        wanted = [row for row in match.entity.fields if purpose in row.purposes]
        entity = copy.systems.get(match.system.key, {}).get(match.entity.key, [])
        rows = []
        for index, values in enumerate(entity):
            where = (match.system.key, match.entity.key, index)
            rows.append(
                [
                    _cell(row, values, withheld.get((*where, row.field_id)))
                    for row in wanted
                ]
            )
        found.append(
            {
                "system": match.system,
                "entity": match.entity,
                "fields": wanted,
                "rows": rows,
                "other_fields": len(match.entity.fields) - len(wanted),
            }
        )
    return found


def _cell(
    row: Field, values: dict[str, Any], held: dict[str, Any] | None
) -> dict[str, Any]:
    """A value to show, or why it is withheld (Art 18) and until when."""
    if held is None:
        return {"value": subjects.plain(values.get(row.field_id))}
    lift_at = datetime.fromisoformat(held["lift_at"]) if held["lift_at"] else None
    return {"restricted": True, "article": held["article"], "lift_at": lift_at}
