"""The registers an inspector asks for: breaches, data-subject requests, deadlines."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for

from app import clock
from app.database import will_write
from app.errors import BadRequest
from app.extensions import db
from app.models.breaches import EXEMPTIONS
from app.models.deadlines import KINDS
from app.models.subject_requests import CLOSED, OPEN, REQUEST_TYPES
from app.roles import OFFICERS
from app.services import audit, breaches, deadlines, subject_requests
from app.services.paging import Page
from app.web.auth import current_web_user, roles_required

bp = Blueprint("web_registers", __name__)

PAGE_SIZE = 50
# Beyond any register's length, and well within what the database can skip.
LAST_PAGE = 100_000
REQUEST_STATUSES = (OPEN, CLOSED)
KIND_LABELS = {
    "legal": "Legal",
    "internal_target": "Internal target",
    "reminder": "Reminder",
    "escalation": "Escalation",
    "bpmn_timer": "BPMN timer",
}
HORIZONS = {"overdue": "Overdue", "week": "Next 7 days", "all": "All"}


def _page_number() -> int:
    number = request.args.get("page", "1")
    if not number.isdigit() or not 1 <= int(number) <= LAST_PAGE:
        raise BadRequest(
            f"The page number must be a whole number from 1 to {LAST_PAGE}."
        )
    return int(number)


def _choice(name: str, allowed: Any, what: str) -> str | None:
    """A filter from the query string: empty for none, else one of the allowed."""
    value = request.args.get(name, "")
    if value and value not in allowed:
        raise BadRequest(f"There is no {what} called '{value}'; nothing was filtered.")
    return value or None


def _pager(found: Page) -> dict[str, Any]:
    """Links to the pages before and after this one, keeping the filters."""
    pages = max(1, -(-found.total // found.page_size))

    def link(number: int) -> str | None:
        if not 1 <= number <= pages or number == found.page:
            return None
        args = {**request.args.to_dict(), "page": number}
        return url_for(request.endpoint or "", **args)

    return {
        "page": found.page,
        "pages": pages,
        "previous": link(found.page - 1),
        "next": link(found.page + 1),
    }


def _csv(body: str, filename: str) -> Response:
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# --- breaches ----------------------------------------------------------------------


@bp.get("/breaches", endpoint="breaches")
@roles_required(*OFFICERS)
def breaches_page() -> Any:
    found = breaches.list_breaches(
        order="open_due", page=_page_number(), size=PAGE_SIZE
    )
    rows = [
        {
            "entry": breaches.entry(breach),
            "open": breaches.awaits_authority(breach),
            "breach": breach,
        }
        for breach in found.items
    ]
    return render_template(
        "web/breaches.html",
        found=found,
        pager=_pager(found),
        rows=rows,
        exemptions=EXEMPTIONS,
    )


@bp.get("/breaches.csv")
@roles_required(*OFFICERS)
def breaches_csv() -> Response:
    will_write()
    body = breaches.export_csv()
    audit.record("breach.register_exported", actor_id=current_web_user().id)
    db.session.commit()
    return _csv(body, "breaches.csv")


# --- data-subject requests ---------------------------------------------------------


def _request_filters() -> dict[str, str | None]:
    return {
        "status": _choice("status", REQUEST_STATUSES, "request status"),
        "type": _choice("type", REQUEST_TYPES, "right"),
    }


@bp.get("/requests", endpoint="requests")
@roles_required(*OFFICERS)
def requests_page() -> Any:
    filters = _request_filters()
    found = subject_requests.list_requests(
        filters["status"],
        filters["type"],
        _page_number(),
        PAGE_SIZE,
        open_first=True,
    )
    return render_template(
        "web/requests.html",
        found=found,
        pager=_pager(found),
        filters=filters,
        statuses=REQUEST_STATUSES,
        rights=REQUEST_TYPES,
        identity_methods=subject_requests.IDENTITY_METHODS,
    )


@bp.get("/requests.csv")
@roles_required(*OFFICERS)
def requests_csv() -> Response:
    filters = _request_filters()
    will_write()
    body = subject_requests.export_csv(filters["status"], filters["type"])
    audit.record("request.register_exported", actor_id=current_web_user().id)
    db.session.commit()
    return _csv(body, "requests.csv")


# --- deadlines ---------------------------------------------------------------------


def _horizon() -> str:
    return _choice("horizon", HORIZONS, "horizon") or "all"


def _before(horizon: str) -> datetime | None:
    if horizon == "overdue":
        return clock.now()
    if horizon == "week":
        return clock.now() + timedelta(days=7)
    return None


@bp.get("/deadlines", endpoint="deadlines")
@roles_required(*OFFICERS)
def deadlines_page() -> Any:
    kind, horizon = _choice("kind", KINDS, "deadline kind"), _horizon()
    found = deadlines.pending(
        kind=kind,
        before=_before(horizon),
        page=_page_number(),
        page_size=PAGE_SIZE,
    )
    return render_template(
        "web/deadlines.html",
        found=found,
        pager=_pager(found),
        instances=deadlines.instances_of(found.items),
        filters={"kind": kind, "horizon": horizon},
        kinds=KIND_LABELS,
        horizons=HORIZONS,
    )
