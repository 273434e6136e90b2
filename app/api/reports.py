"""Accountability reports: the record of processing and the processor agreements."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, render_template
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from app.api.auth import require_roles
from app.api.blueprint import Blueprint
from app.services import processing_record, processor_agreements
from app.services.breaches import FORMULA_STARTS

PREFIX = "reports"
blp = Blueprint(
    "reports", __name__, description="Art 30 record of processing; Art 28 checklists."
)

RECORD_READERS = ("dpo", "admin", "privacy_officer")
AGREEMENT_READERS = ("dpo", "admin")
# A spreadsheet runs a cell that starts with one of these as a formula.
# The printable page needs its own inline styles and nothing else.
HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
CSV_COLUMNS = (
    "purpose",
    "purpose_name",
    "legal_bases",
    "art9_conditions",
    "subject_categories",
    "field",
    "field_name",
    "data_category",
    "data_category_name",
    "retention_period",
    "retention_anchor",
    "retention_criterion",
    "system",
    "system_country",
    "security_measures",
    "recipients",
    "transfers",
    "processes",
)
FORMATS = {"200": {"description": "JSON, or text/html or text/csv by `format`"}}


class RecordArgs(Schema):
    format = fields.String(
        load_default="json", validate=validate.OneOf(("json", "html", "csv"))
    )


class RecordFindingSchema(Schema):
    code = fields.String()
    article = fields.String()
    message = fields.String()
    purpose = fields.String()
    field = fields.String()
    system = fields.String(allow_none=True)
    recipient = fields.String()
    country = fields.String()
    purposes = fields.List(fields.String())


class ProcessingRecordSchema(Schema):
    generated_at = fields.String()
    controller = fields.Dict(keys=fields.String(), values=fields.String())
    dpo = fields.Dict(keys=fields.String(), values=fields.String())
    purposes = fields.List(fields.Dict())
    findings = fields.List(fields.Nested(RecordFindingSchema))


class AgreementTermCheckSchema(Schema):
    term = fields.String()
    letter = fields.String(allow_none=True)
    label = fields.String()
    present = fields.Boolean()


class AgreementSummarySchema(Schema):
    status = fields.String()
    signed_on = fields.Date(allow_none=True)
    reference = fields.String(allow_none=True)


class SubProcessorCheckSchema(Schema):
    name = fields.String()
    country = fields.String()
    third_country = fields.Boolean()
    safeguard = fields.String(allow_none=True)
    safeguard_article = fields.String(allow_none=True)
    note = fields.String(allow_none=True)


class ProcessorChecklistSchema(Schema):
    system = fields.String()
    name = fields.String()
    role = fields.String()
    country = fields.String()
    third_country = fields.Boolean()
    agreement = fields.Nested(AgreementSummarySchema)
    items = fields.List(fields.Nested(AgreementTermCheckSchema))
    missing = fields.List(fields.String())
    sub_processors = fields.List(fields.Nested(SubProcessorCheckSchema))
    status = fields.String()


class ProcessorChecklistListSchema(Schema):
    items = fields.List(fields.Nested(ProcessorChecklistSchema))


@blp.route("/record-of-processing")
class RecordOfProcessing(MethodView):
    @require_roles(*RECORD_READERS)
    @blp.arguments(RecordArgs, location="query")
    @blp.response(200, ProcessingRecordSchema)
    @blp.doc(responses=FORMATS)
    def get(self, args: dict[str, Any]) -> Any:
        """The Art 30(1) record, per purpose, with findings; HTML or CSV on request."""
        record = processing_record.record_of_processing()
        if args["format"] == "html":
            return _html(record)
        if args["format"] == "csv":
            return _csv(record)
        return record


@blp.route("/processor-agreements")
class ProcessorAgreements(MethodView):
    @require_roles(*AGREEMENT_READERS)
    @blp.response(200, ProcessorChecklistListSchema)
    def get(self) -> dict[str, Any]:
        """Every processor's Art 28(3) checklist and overall status."""
        return {"items": processor_agreements.checklists()}


@blp.route("/processor-agreements/<key>")
class ProcessorAgreement(MethodView):
    @require_roles(*AGREEMENT_READERS)
    @blp.response(200, ProcessorChecklistSchema)
    def get(self, key: str) -> dict[str, Any]:
        """One processor's Art 28(3) checklist."""
        return processor_agreements.checklist_of(key)


def _html(record: dict[str, Any]) -> Response:
    page = render_template("reports/record_of_processing.html", record=record)
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_POLICY
    return response


def _csv(record: dict[str, Any]) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for row in _csv_rows(record):
        writer.writerow([_cell(row.get(name)) for name in CSV_COLUMNS])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        'attachment; filename="record-of-processing.csv"'
    )
    return response


def _csv_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per purpose and field (a purpose without fields gets one row)."""
    rows = []
    for purpose in record["purposes"]:
        common = _purpose_columns(purpose)
        systems = {system["key"]: system for system in purpose["systems"]}
        categories = {c["key"]: c["name"] for c in purpose["data_categories"]}
        for rule in purpose["retention"] or [{}]:
            field_id = rule.get("field") or ""
            system = systems.get(field_id.split(".", 1)[0], {})
            category = rule.get("data_category", "")
            rows.append(
                {
                    **common,
                    "field": field_id,
                    "field_name": rule.get("name"),
                    "data_category": category,
                    "data_category_name": categories.get(category, ""),
                    "retention_period": rule.get("period"),
                    "retention_anchor": rule.get("anchor"),
                    "retention_criterion": rule.get("criterion"),
                    "system": system.get("key"),
                    "system_country": system.get("country"),
                    "security_measures": system.get("security_measures"),
                }
            )
    return rows


def _purpose_columns(purpose: dict[str, Any]) -> dict[str, Any]:
    return {
        "purpose": purpose["key"],
        "purpose_name": purpose["name"],
        "legal_bases": _joined(b["article"] for b in purpose["legal_bases"]),
        "art9_conditions": _joined(c["article"] for c in purpose["art9_conditions"]),
        "subject_categories": _joined(s["name"] for s in purpose["subject_categories"]),
        "recipients": _joined(
            f"{r['name']} ({r['country']})" for r in purpose["recipients"]
        ),
        "transfers": _joined(
            f"{t['name']} ({t['country']}): {t['safeguard'] or 'NO SAFEGUARD'}"
            for t in purpose["transfers"]
        ),
        "processes": _joined(
            f"{p['process_id']} v{p['version']}: {' '.join(p['task_ids'])}"
            for p in purpose["processes"]
        ),
    }


def _joined(items: Any) -> str:
    return "; ".join(items)


def _cell(value: Any) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text
