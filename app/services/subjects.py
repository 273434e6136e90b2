"""Subject operations over the connectors: export and the Art 15 access report."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Collection
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import current_app

from app.countries import third_country
from app.errors import NotFound
from app.models import Field, System
from app.models.registry import ART9_CONDITIONS, LEGAL_BASES
from app.services import audit, connectors, registry, taxonomy
from app.services.breaches import FORMULA_STARTS

SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", Decimal: "number"}
FORMATS = {date: "date", datetime: "date-time"}
# Art 15(1)(f); the authority of the member state the service is set up for.
AUTHORITIES = {"NL": "Autoriteit Persoonsgegevens"}
ARTICLES = {
    "purposes": "Art 15(1)(a)",
    "data_category": "Art 15(1)(b)",
    "recipients": "Art 15(1)(c)",
    "retention": "Art 15(1)(d)",
    "rights": "Art 15(1)(e)",
    "complaint": "Art 15(1)(f)",
    "source": "Art 15(1)(g)",
    "automated_decision": "Art 15(1)(h)",
}


def find(identities: dict[str, str]) -> connectors.Subject:
    """The subject's rows across systems; matching nothing is a 404."""
    subject = connectors.locate(identities)
    if not subject.matches:
        raise NotFound(
            "No connected system holds rows matching the identities given "
            f"({', '.join(subject.identity_keys)}).",
            code="subject-not-found",
        )
    return subject


def located(subject: connectors.Subject) -> dict[str, Any]:
    """Where the subject was found: systems, entities and row keys, no values."""
    return {
        "systems": subject.systems,
        "matches": [
            {
                "system": match.system.key,
                "entity": match.entity.key,
                "matched_on": match.matched_on,
                "row_keys": match.row_keys,
            }
            for match in subject.matches
        ],
    }


def record(
    action: str,
    subject: connectors.Subject,
    copy: connectors.Copy | None,
    actor_id: int | None,
    **details: Any,
) -> None:
    """Audit a subject operation by identity kinds, systems and field ids only."""
    audit.record(
        action,
        actor_id=actor_id,
        identity_keys=subject.identity_keys,
        systems=subject.systems,
        entities=[match.name for match in subject.matches],
        fields=copy.field_ids if copy else [],
        rows=copy.row_count if copy else 0,
        **details,
    )


def purpose_field_ids(subject: connectors.Subject, purpose: str) -> list[str]:
    """The subject's fields the purpose may use (Art 5(1)(b)); the rest stay unread."""
    return [row.field_id for row in subject.fields if purpose in row.purposes]


def read_for_purpose(subject: connectors.Subject, purpose: str) -> connectors.Copy:
    """The values of the subject's fields serving the purpose; restricted ones out."""
    return connectors.read(subject, purpose_field_ids(subject, purpose))


# --- export -------------------------------------------------------------------------


def portable_ids(subject: connectors.Subject) -> list[str]:
    """The subject's fields within Art 20: provided or observed, consent or contract."""
    return [row.field_id for row in subject.fields if row.portable]


def export_document(
    subject: connectors.Subject, field_ids: Collection[str] | None = None
) -> tuple[dict[str, Any], connectors.Copy]:
    """The subject's data as JSON: system, entity, rows; with its manifest."""
    copy = connectors.read(subject, field_ids)
    document = {"data": plain(copy.systems), "manifest": manifest(subject, copy)}
    return document, copy


def export_zip(
    subject: connectors.Subject, field_ids: Collection[str] | None = None
) -> tuple[bytes, connectors.Copy]:
    """One CSV per entity, named system.entity.csv, and manifest.json, zipped."""
    copy = connectors.read(subject, field_ids)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for system_key, entities in copy.systems.items():
            for entity_key, rows in entities.items():
                name = f"{system_key}.{entity_key}.csv"
                archive.writestr(name, _csv(rows))
        document = manifest(subject, copy)
        archive.writestr("manifest.json", json.dumps(document, indent=2))
    return buffer.getvalue(), copy


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        # A restricted value is left out of its row, so the header is the union.
        names = list(dict.fromkeys(name for row in rows for name in row))
        writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
        writer.writeheader()
        writer.writerows([{k: _csv_value(v) for k, v in row.items()} for row in rows])
    return out.getvalue()


def _csv_value(value: Any) -> Any:
    """A cell as text; one a spreadsheet would run as a formula gets a quote first."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else plain(value)


def plain(value: Any) -> Any:
    """Values as JSON writes them: ISO dates, exact decimals as strings."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def manifest(subject: connectors.Subject, copy: connectors.Copy) -> dict[str, Any]:
    """A JSON Schema of the export; each entity's rows are one definition."""
    fields = {row.field_id: row for row in subject.fields}
    definitions: dict[str, Any] = {}
    systems: dict[str, Any] = {}
    for system_key, entities in copy.systems.items():
        entity_refs = {}
        for entity_key in entities:
            name = f"{system_key}.{entity_key}"
            ids = [i for i in copy.field_ids if i.startswith(name + ".")]
            definitions[name] = _row_schema(ids, fields, copy.types)
            entity_refs[entity_key] = {
                "type": "array",
                "items": {"$ref": f"#/$defs/{name}"},
                "x-csv-file": f"{name}.csv",
            }
        systems[system_key] = {"type": "object", "properties": entity_refs}
    return {
        "$schema": SCHEMA_DRAFT,
        "title": "Personal data held about one data subject",
        "type": "object",
        "properties": {"data": {"type": "object", "properties": systems}},
        "$defs": definitions,
    }


def _row_schema(
    ids: list[str], fields: dict[str, Field], types: dict[str, type | None]
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {i: _column_schema(fields[i], types.get(i)) for i in ids},
        "additionalProperties": False,
    }


def _column_schema(row: Field, python_type: type | None) -> dict[str, Any]:
    described: dict[str, Any] = {
        "title": row.name,
        "type": [
            JSON_TYPES.get(python_type, "string") if python_type else "string",
            "null",
        ],
        "x-field-id": row.field_id,
        "x-data-category": row.data_category,
        "x-purposes": row.purposes,
    }
    if python_type in FORMATS:
        described["format"] = FORMATS[python_type]
    return described


# --- the access report (Art 15) -----------------------------------------------------


def access_report(
    subject: connectors.Subject,
) -> tuple[dict[str, Any], connectors.Copy]:
    """Art 15(1)(a)-(h) for every field found, and the copy of the data."""
    copy = connectors.read(subject)
    systems = {system.key: system for system in registry.list_systems()}
    purposes = {purpose.key: purpose for purpose in registry.list_purposes()}
    found = [row for row in subject.fields if row.field_id in copy.types]
    report = {
        "processing": True,
        "articles": ARTICLES,
        "fields": [_field_report(row, systems, purposes) for row in found],
        "copy": _with_placeholders(copy),
        "restricted": copy.withheld,
    }
    return report, copy


def _with_placeholders(copy: connectors.Copy) -> dict[str, Any]:
    """The copy, with each restricted value replaced by its ground and lift date."""
    systems = plain(copy.systems)
    for held in copy.withheld:
        row = systems[held["system"]][held["entity"]][held["row"]]
        row[held["field"]] = {
            key: held[key] for key in ("status", "ground", "article", "lift_at")
        }
    return systems


def _field_report(
    row: Field, systems: dict[str, System], purposes: dict[str, Any]
) -> dict[str, Any]:
    system = row.entity.system
    return {
        "id": row.field_id,
        "name": row.name,
        "system": {"key": system.key, "name": system.name, "country": system.country},
        "purposes": [_purpose(key, purposes) for key in row.purposes],
        "legal_basis": {
            "key": row.legal_basis,
            "article": LEGAL_BASES[row.legal_basis],
        },
        "art9_condition": _art9(row),
        "data_category": _category(row),
        "recipients": [_recipient(r, systems) for r in row.recipients],
        "retention": row.retention,
        "rights": _rights(row),
        "complaint": _complaint(),
        "origin": row.origin,
        "source": _source(row),
        "automated_decision": _automated(row),
    }


def _purpose(key: str, purposes: dict[str, Any]) -> dict[str, str]:
    own = purposes.get(key)
    if own is not None:
        return {"key": key, "name": own.name, "description": own.description}
    term = taxonomy.fides().uses.get(key)
    name = term.name if term else key
    return {"key": key, "name": name, "description": term.description if term else ""}


def _category(row: Field) -> dict[str, Any]:
    term = taxonomy.fides().categories.get(row.data_category)
    return {
        "key": row.data_category,
        "name": term.name if term else row.data_category,
        "special_category": row.special_category,
    }


def _art9(row: Field) -> dict[str, str] | None:
    if not row.art9_condition:
        return None
    return {"key": row.art9_condition, "article": ART9_CONDITIONS[row.art9_condition]}


def _recipient(recipient: dict[str, Any], systems: dict[str, System]) -> dict[str, Any]:
    key = recipient.get("system")
    if key is None:
        country = recipient["country"]
        return {
            "name": recipient["name"],
            "country": country,
            "third_country": third_country(country),
        }
    system = systems[key]
    return {
        "name": system.name,
        "country": system.country,
        "third_country": third_country(system.country),
        "role": system.role,
        "processor_agreement": system.agreement_status,
    }


def _rights(row: Field) -> list[dict[str, Any]]:
    """Art 15(1)(e), as far as each right reaches this field."""
    erasure_note = (
        "Limited while the legal obligation to keep it lasts (Art 17(3)(b))."
        if row.legal_basis == "legal_obligation"
        else None
    )
    objection = row.legal_basis in ("legitimate_interests", "public_task") or any(
        purpose.startswith("marketing") for purpose in row.purposes
    )
    return [
        {"right": "rectification", "article": "Art 16", "applies": True},
        {
            "right": "erasure",
            "article": "Art 17",
            "applies": True,
            "note": erasure_note,
        },
        {"right": "restriction", "article": "Art 18", "applies": True},
        {"right": "objection", "article": "Art 21", "applies": objection},
        {"right": "portability", "article": "Art 20", "applies": row.portable},
    ]


def _complaint() -> dict[str, Any]:
    member_state = current_app.config["MEMBER_STATE"]
    return {
        "article": "Art 77",
        "text": "You may lodge a complaint with a supervisory authority, in "
        "particular in the member state where you live or work or where the "
        "infringement took place.",
        "authority": AUTHORITIES.get(member_state),
    }


def _source(row: Field) -> dict[str, str] | None:
    """Art 15(1)(g): where the data did not come from the subject."""
    if row.origin == "provided":
        return None
    system = row.entity.system.name
    if row.origin == "observed":
        return {"origin": "observed", "description": f"Recorded by {system}."}
    return {
        "origin": "inferred",
        "description": f"Derived by {system} from other data.",
    }


def _automated(row: Field) -> dict[str, Any] | None:
    if not row.automated_decision:
        return None
    return {"logic": row.automated_decision_logic, "article": "Art 22"}
