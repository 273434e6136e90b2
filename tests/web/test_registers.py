"""The breach register, the request overview and the deadlines, as officers see them."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from tests.api.test_breaches import ASSESSMENT

BREACH = "personal_data_breach"
REQUEST = "data_subject_request"
# The frozen clock stands at 2026-03-02 09:00 UTC (10:00 in Amsterdam).
SUBJECT_EMAIL = "hanna.visser@example.org"
HOSTILE = "<script>alert(1)</script>"
DUE = re.compile(r"<td>(\d+ \w+ 2026, \d\d:\d\d) CES?T</td>")
PAGES = ("/breaches", "/breaches.csv", "/requests", "/requests.csv", "/deadlines")


@pytest.fixture
def olga(sign_in_as):
    return sign_in_as("pia", "privacy_officer")


@pytest.fixture
def workflows(review_process, frozen_clock):
    return frozen_clock


def start_breach(officer, aware_at, summary="Mailbox forwarding"):
    data = {"aware_at": aware_at, "summary": summary, "detected_by": "IT desk"}
    reply = officer.post("/api/v1/instances", json={"process_id": BREACH, "data": data})
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def start_request(officer, request_type="access", **data):
    body = {
        "request_type": request_type,
        "subject": {"email": SUBJECT_EMAIL, "name": "Hanna Visser"},
        "channel": "email",
        **data,
    }
    body = {"process_id": REQUEST, "data": body}
    reply = officer.post("/api/v1/instances", json=body)
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def complete(caller, instance, bpmn_id, data):
    url = f"/api/v1/tasks?instance_id={instance['id']}&status=ready"
    [task] = [t for t in caller.get(url).get_json()["items"] if t["bpmn_id"] == bpmn_id]
    reply = caller.post(f"/api/v1/tasks/{task['id']}/complete", json={"data": data})
    assert reply.status_code == 200, reply.get_json()


def rows_of(page):
    """The register table's body rows, in order."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr")[1:]


def csv_rows(reply):
    return list(csv.reader(io.StringIO(reply.get_data(as_text=True))))


# --- who may see them ---------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_a_manager_may_not_open_a_register(sign_in_as, path):
    manager = sign_in_as("mia", "manager")

    reply = manager.get(path)

    assert reply.status_code == 403
    assert "This page needs one of the roles" in reply.get_data(as_text=True)


@pytest.mark.parametrize("role", ["dpo", "privacy_officer", "admin"])
def test_officers_open_every_register(sign_in_as, role):
    officer = sign_in_as("ann", role)

    for path in PAGES:
        assert officer.get(path).status_code == 200, path


def test_a_visitor_not_signed_in_is_sent_to_sign_in(client):
    reply = client.get("/breaches")

    assert reply.status_code == 302
    assert "/sign-in" in reply.headers["Location"]


# --- the breach register --------------------------------------------------------------


def test_an_empty_breach_register_says_so_and_offers_no_download(olga):
    page = olga.page("/breaches")

    assert "<h1>Breach register</h1>" in page
    assert "Art 33(5)" in page
    assert "0 breaches in the register" in page
    assert "No breach has been registered" in page
    assert "Download CSV" not in page


def test_breaches_still_awaiting_notification_come_first_soonest_due(
    workflows, officer, olga
):
    later = start_breach(officer, "2026-03-02T08:00:00+00:00", "Later breach")
    sooner = start_breach(officer, "2026-03-01T09:00:00+00:00", "Sooner breach")
    settled = start_breach(officer, "2026-02-28T09:00:00+00:00", "Settled breach")
    complete(
        officer,
        settled,
        "assess",
        {**ASSESSMENT, "outcome": "no_risk", "no_notification_reason": "Encrypted"},
    )

    page = olga.page("/breaches")

    rows = rows_of(page)
    assert "3 breaches in the register" in page
    assert ["Sooner breach" in rows[0], "Later breach" in rows[1]] == [True, True]
    assert "Settled breach" in rows[2]
    assert "Not notified: Encrypted" in rows[2]
    assert "no longer running" in rows[2]
    assert 'class="due soon">due in 2 days' in rows[0]
    assert f'href="/instances/{later["id"]}"' in rows[1]
    assert f'href="/instances/{sooner["id"]}"' in rows[0]


def test_the_countdown_shows_a_missed_72_hours_as_overdue(
    workflows, officer, sign_in_as
):
    start_breach(officer, "2026-03-02T08:00:00+00:00")
    workflows.advance(days=4)

    page = sign_in_as("pia", "dpo").page("/breaches")

    assert 'class="due overdue">overdue by 1 day' in page


def test_times_are_shown_in_the_organisations_zone(workflows, officer, olga):
    start_breach(officer, "2026-03-02T08:00:00+00:00")

    page = olga.page("/breaches")

    assert "2 Mar 2026, 09:00 CET" in page
    assert "5 Mar 2026, 09:00 CET" in page


def test_a_hostile_breach_summary_is_shown_as_text(workflows, officer, olga):
    start_breach(officer, "2026-03-02T08:00:00+00:00", HOSTILE)

    page = olga.page("/breaches")

    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_breach_csv_is_the_register_with_formula_cells_guarded(
    workflows, officer, olga
):
    start_breach(officer, "2026-03-02T08:00:00+00:00", '=HYPERLINK("x")')
    start_breach(officer, "2026-03-01T08:00:00+00:00", "Lost laptop")

    reply = olga.get("/breaches.csv")

    assert reply.status_code == 200
    assert reply.mimetype == "text/csv"
    assert "attachment" in reply.headers["Content-Disposition"]
    header, *lines = csv_rows(reply)
    assert header[0] == "reference" and "summary" in header
    assert len(lines) == 2
    summaries = {line[header.index("summary")] for line in lines}
    assert summaries == {'\'=HYPERLINK("x")', "Lost laptop"}


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/breaches.csv", "breach.register_exported"),
        ("/requests.csv", "request.register_exported"),
    ],
)
def test_each_download_is_recorded_in_the_audit_trail(app, olga, path, action):
    assert olga.get(path).status_code == 200

    with app.app_context():
        actors = db.session.scalars(
            select(AuditEvent.actor_id).where(AuditEvent.action == action)
        ).all()
    assert actors == [olga.user_id]


def test_the_register_page_links_its_download(workflows, officer, olga):
    start_breach(officer, "2026-03-02T08:00:00+00:00")

    page = olga.page("/breaches")

    assert 'href="/breaches.csv">Download CSV' in page


# --- the request overview -------------------------------------------------------------


def test_an_empty_request_overview_says_so(olga):
    page = olga.page("/requests")

    assert "<h1>Data-subject requests</h1>" in page
    assert "Art 12(3)" in page
    assert "0 requests" in page
    assert "No data-subject request has been received yet" in page


def test_requests_are_ordered_by_their_deadline_open_first(workflows, officer, olga):
    start_request(officer, "erasure", received_at="2026-02-25T09:00:00+00:00")
    start_request(officer, "access", received_at="2026-02-10T09:00:00+00:00")

    page = olga.page("/requests")

    rows = rows_of(page)
    assert "2 requests" in page
    assert "Access" in rows[0] and "Art 15" in rows[0]
    assert "Erasure" in rows[1] and "Art 17" in rows[1]
    assert re.search(r"DSR-2026-000\d", rows[0])
    assert 'class="due later">due in 8 days' in rows[0]
    assert '10 Mar 2026 <span class="muted">(one month)' in rows[0]
    assert "due in 23 days" in rows[1]
    assert "not yet checked" in rows[0]


def test_the_request_overview_never_names_the_subject(workflows, officer, olga):
    start_request(officer)

    page = olga.page("/requests")
    export = olga.get("/requests.csv").get_data(as_text=True)

    for shown in (page, export):
        assert SUBJECT_EMAIL not in shown
        assert "Hanna" not in shown and "Visser" not in shown


def test_requests_are_filtered_by_right_and_status(workflows, officer, olga):
    start_request(officer, "erasure")
    start_request(officer, "access")

    page = olga.page("/requests?type=erasure&status=open")

    rows = rows_of(page)
    assert len(rows) == 1 and "Erasure" in rows[0]
    assert "1 request matching the filters" in page
    assert '<option value="erasure" selected>' in page
    assert "No request matches these filters" in olga.page("/requests?status=closed")


def test_an_unknown_filter_is_refused_in_plain_words(olga):
    reply = olga.get("/requests?type=telepathy")

    assert reply.status_code == 400
    page = reply.get_data(as_text=True)
    assert "There is no right called &#39;telepathy&#39;" in page


def test_the_request_csv_has_one_line_per_request_and_keeps_the_filter(
    workflows, officer, olga
):
    start_request(officer, "erasure")
    start_request(officer, "access")

    reply = olga.get("/requests.csv?type=access")

    assert reply.mimetype == "text/csv"
    header, *lines = csv_rows(reply)
    assert header[:3] == ["reference", "type", "article"]
    assert [line[1:3] for line in lines] == [["access", "Art 15"]]
    assert 'href="/requests.csv?type=access">Download CSV' in olga.page(
        "/requests?type=access"
    )


# --- deadlines ----------------------------------------------------------------------


def test_no_pending_deadline_says_nothing_is_due(olga):
    page = olga.page("/deadlines")

    assert "<h1>Deadlines</h1>" in page
    assert "0 pending deadlines" in page
    assert "Nothing is due" in page


def test_deadlines_of_every_instance_are_listed_soonest_first(workflows, officer, olga):
    breach = start_breach(officer, "2026-03-02T08:00:00+00:00")
    request = start_request(officer, "access")

    page = olga.page("/deadlines")

    rows = rows_of(page)
    dues = [datetime.strptime(DUE.search(row)[1], "%d %b %Y, %H:%M") for row in rows]
    assert len(rows) == 5 and dues == sorted(dues)
    [authority] = [row for row in rows if re.search(r"row\">\s*authority\s*<", row)]
    assert "5 Mar 2026, 09:00 CET" in authority
    assert "Art 33(1)" in authority and "period PT72H" in authority
    assert f'href="/instances/{breach["id"]}">BR-2026-0001' in authority
    assert "Personal-data breach" in authority
    [reply] = [row for row in rows if "period P1M" in row]
    assert "Art 12(3)" in reply and f'href="/instances/{request["id"]}"' in reply
    assert 'class="mark soon">Due soon' in rows[0]


def test_deadlines_are_filtered_by_kind_and_horizon(workflows, officer, olga):
    start_breach(officer, "2026-03-02T08:00:00+00:00")
    start_request(officer, "access")

    legal = rows_of(olga.page("/deadlines?kind=legal"))
    week = olga.page("/deadlines?horizon=week")

    assert legal and all("Legal" in row for row in legal)
    assert "Art 33(1)" in week and "period P1M" not in week
    assert "No pending deadline matches" in olga.page("/deadlines?horizon=overdue")


def test_an_overdue_deadline_is_marked(workflows, officer, sign_in_as):
    start_breach(officer, "2026-03-02T08:00:00+00:00")
    workflows.advance(days=4)

    page = sign_in_as("pia", "dpo").page("/deadlines?horizon=overdue")

    assert "Overdue" in page
    assert 'class="due overdue">overdue by' in page


@pytest.mark.parametrize("page", ["-2", "two", "0", "99999999999999999999"])
def test_a_page_number_that_is_not_one_is_refused(olga, page):
    reply = olga.get(f"/deadlines?page={page}")

    assert reply.status_code == 400
    assert "The page number must be a whole number" in reply.get_data(as_text=True)
