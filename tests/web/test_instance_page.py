"""The instance pages: the list, one instance's facts, diagram states and history."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from app.services import deadlines, instances, letters, users

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "</script><script>alert(1)</script>"
DIAGRAM_DATA = re.compile(
    r'<script type="application/json" id="diagram-data">(.*?)</script>', re.DOTALL
)


@pytest.fixture
def petra(sign_in_as):
    return sign_in_as("petra", "privacy_officer")


@pytest.fixture
def review(review_process, start_instance):
    return start_instance(business_key="REV-1")


def open_task(caller, instance_id):
    detail = caller.get(f"/api/v1/instances/{instance_id}").get_json()
    return next(task for task in detail["tasks"] if task["status"] == "ready")


def complete_prepare(officer, instance_id):
    task = open_task(officer, instance_id)
    reply = officer.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {"summary": "ok"}}
    )
    assert reply.status_code == 200, reply.get_json()
    return task


def test_the_page_shows_process_status_key_and_the_open_task(petra, review):
    page = petra.page(f"/instances/{review['id']}")

    assert "<h1>Two-step review</h1>" in page
    assert "two_step_review, version 1" in page
    assert "REV-1" in page
    assert ">running<" in page
    link = re.search(r'<a href="/tasks/[0-9a-f-]{36}">Prepare the review</a>', page)
    assert link is not None


def test_the_history_names_who_completed_a_task_and_the_audit_who_started(
    petra, review, officer
):
    complete_prepare(officer, review["id"])

    page = petra.page(f"/instances/{review['id']}")

    history = page.split('id="history-heading"')[1].split("</section>")[0]
    assert history.index("Review requested") < history.index("Prepare the review")
    assert "user task" in history
    assert "<td>olga</td>" in history
    audit_part = page.split('id="audit-heading"')[1]
    assert "started the instance" in audit_part
    assert "completed a task: Prepare the review" in audit_part
    assert "Fields: summary" in audit_part
    assert "ok" not in re.findall(r'class="detail">([^<]*)<', audit_part)


def test_the_page_shows_deadlines_with_rule_and_countdown(
    app, petra, review, frozen_clock
):
    with app.app_context():
        deadlines.set_deadline(
            review["id"],
            "reply",
            start=frozen_clock(),
            period="1 month",
            article="Art 12(3)",
        )
        db.session.commit()

    page = petra.page(f"/instances/{review['id']}")

    section = page.split('id="deadlines-heading"')[1].split("</section>")[0]
    assert "<td>reply</td>" in section
    assert "Art 12(3), 1 month" in section
    assert "due in" in section
    assert "pending" in section


def test_a_deadline_met_after_its_end_says_how_late(app, petra, review, frozen_clock):
    with app.app_context():
        row = deadlines.set_deadline(
            review["id"],
            "reply",
            start=frozen_clock(),
            period="PT72H",
            article="Art 33",
        )
        frozen_clock.at = row.due_at + timedelta(hours=5)
        deadlines.close(review["id"], "reply", "met")
        db.session.commit()

    page = petra.page(f"/instances/{review['id']}")

    section = page.split('id="deadlines-heading"')[1].split("</section>")[0]
    assert "met, 5 hours late" in section


def test_a_fresh_instance_has_its_start_completed_and_first_task_active(petra, review):
    diagram = petra.get(f"/instances/{review['id']}/diagram.json").get_json()

    assert '<bpmn:userTask id="prepare"' in diagram["xml"]
    assert "start" in diagram["completed"]
    assert diagram["active"] == ["prepare"]
    assert diagram["waiting"] == [] and diagram["error"] == []


def test_after_the_first_task_the_next_is_active_and_the_first_completed(
    petra, review, officer
):
    complete_prepare(officer, review["id"])

    diagram = petra.get(f"/instances/{review['id']}/diagram.json").get_json()

    assert diagram["active"] == ["approve"]
    assert {"start", "prepare"} <= set(diagram["completed"])


def test_the_page_embeds_the_same_diagram_data(petra, review):
    page = petra.page(f"/instances/{review['id']}")

    embedded = json.loads(DIAGRAM_DATA.search(page).group(1))
    assert embedded["active"] == ["prepare"]
    assert 'id="diagram"' in page and "js/diagram.js" in page


def test_the_diagram_page_keeps_the_strict_content_security_policy(petra, review):
    reply = petra.get(f"/instances/{review['id']}")

    policy = reply.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'self';")
    assert "unsafe-inline" not in policy and "style-src" not in policy
    assert "<script>" not in reply.get_data(as_text=True)
    assert ' style="' not in reply.get_data(as_text=True)


@pytest.fixture
def hostile(review_process, deploy, start_instance):
    bpmn = (ROOT / "workflows" / "two_step_review.bpmn").read_text()
    bpmn = bpmn.replace("two_step_review", "hostile_review").replace(
        'name="Prepare the review"',
        'name="&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"',
    )
    reply = deploy(bpmn.encode(), filename="hostile_review.bpmn")
    assert reply.status_code == 201, reply.get_json()
    return start_instance("hostile_review")


def test_hostile_names_are_escaped_in_the_tables_and_the_embedded_json(petra, hostile):
    page = petra.page(f"/instances/{hostile['id']}")

    assert HOSTILE not in page
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    embedded = DIAGRAM_DATA.search(page).group(1)
    assert "</script" not in embedded
    assert HOSTILE in json.loads(embedded)["xml"].replace("&lt;", "<").replace(
        "&gt;", ">"
    )


@pytest.mark.parametrize(
    "path", ["/instances", "/instances/{id}", "/instances/{id}/diagram.json"]
)
def test_a_manager_without_an_officer_role_is_refused(sign_in_as, review, path):
    designer = sign_in_as("dana", "process_designer")

    reply = designer.get(path.format(id=review["id"]))

    assert reply.status_code == 403
    assert "This page needs one of the roles" in reply.get_data(as_text=True)


def test_an_unknown_instance_is_a_404_page(petra):
    reply = petra.get("/instances/no-such-instance")

    assert reply.status_code == 404
    assert "No instance with id" in reply.get_data(as_text=True)


def test_signed_out_browsers_are_sent_to_sign_in(client, review):
    reply = client.get(f"/instances/{review['id']}")

    assert reply.status_code == 302
    assert "/sign-in" in reply.headers["Location"]


def test_the_list_shows_instances_newest_first_and_filters(
    petra, review_process, start_instance, frozen_clock
):
    first = start_instance(business_key="OLD-1")
    frozen_clock.advance(days=1)
    second = start_instance(business_key="NEW-2")

    page = petra.page("/instances")

    assert page.index("NEW-2") < page.index("OLD-1")
    assert f"/instances/{first['id']}" in page and f"/instances/{second['id']}" in page
    assert "2 instances" in page
    assert "NEW-2" not in petra.page("/instances?status=completed")
    assert "NEW-2" in petra.page("/instances?process=two_step_review&status=running")
    assert "NEW-2" not in petra.page("/instances?process=dpia")


def test_the_list_pages_through_many_instances(
    app, petra, review_process, start_instance, monkeypatch
):
    from app.web import instances as page_module

    monkeypatch.setattr(page_module, "PAGE_SIZE", 2)
    for number in range(3):
        start_instance(business_key=f"K-{number}")

    first = petra.page("/instances")
    second = petra.page("/instances?page=2")

    assert "Page 1 of 2" in first and 'rel="next"' in first
    assert "K-0" in second and "K-2" not in second


@pytest.mark.parametrize(
    "query, message",
    [
        ("status=sleeping", "There is no status"),
        ("page=0", "The page number must be"),
        ("page=two", "The page number must be"),
        ("page=99999999999999999999", "The page number must be"),
    ],
)
def test_a_bad_filter_says_so_and_keeps_the_choice(petra, review, query, message):
    reply = petra.get(f"/instances?process=two_step_review&{query}")

    assert reply.status_code == 422
    page = reply.get_data(as_text=True)
    assert message in page
    assert '<option value="two_step_review" selected>' in page


@pytest.fixture
def failed(review_process, deploy, start_instance, officer, dpo):
    bpmn = (ROOT / "workflows" / "two_step_review.bpmn").read_text()
    bpmn = bpmn.replace("two_step_review", "failing_review").replace(
        'outcome = "approved"', "outcome = no_such_name"
    )
    assert deploy(bpmn.encode(), filename="failing_review.bpmn").status_code == 201
    started = start_instance("failing_review")
    complete_prepare(officer, started["id"])
    task = open_task(officer, started["id"])
    reply = dpo.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {"approved": True}}
    )
    assert reply.status_code == 200, reply.get_json()
    return started


def test_a_failed_script_task_is_marked_error_and_its_message_shown(petra, failed):
    diagram = petra.get(f"/instances/{failed['id']}/diagram.json").get_json()
    page = petra.page(f"/instances/{failed['id']}")

    assert diagram["error"] == ["record_outcome"]
    assert {"prepare", "approve", "approved_gateway"} <= set(diagram["completed"])
    assert "The instance stopped on an error" in page
    assert "no_such_name" in page


def test_an_event_based_gateway_waiting_for_a_reply_or_a_date_is_waiting(
    petra, deploy, start_instance, frozen_clock
):
    bpmn = (ROOT / "tests" / "data" / "reply_or_reminder.bpmn").read_bytes()
    assert deploy(bpmn, "reply_or_reminder.bpmn").status_code == 201
    started = start_instance(
        "reply_or_reminder",
        data={"case_id": "C-1", "reply_by": "2026-03-09T09:00:00+00:00"},
    )

    diagram = petra.get(f"/instances/{started['id']}/diagram.json").get_json()

    assert "wait" in diagram["waiting"]
    assert diagram["completed"] == ["start"] and diagram["active"] == []


def test_names_of_gives_the_names_of_known_users_only(app):
    with app.app_context():
        user = users.create_user("nora", ["dpo"])
        db.session.commit()

        assert users.names_of({user.id, None, 99_999}) == {user.id: "nora"}
        assert users.names_of(set()) == {}


def test_diagram_service_gives_the_versions_xml_and_states(app, review):
    with app.app_context():
        found = instances.get_instance(review["id"])

        diagram = instances.diagram(found)

    assert diagram["xml"].startswith("<?xml")
    assert set(diagram) == {"xml", "completed", "active", "waiting", "error"}


@pytest.fixture
def letter_of(app, dpo):
    """Write a letter for an instance with the generic notice; returns its id."""
    body = (ROOT / "letters" / "generic_notice.html").read_text()
    reply = dpo.put("/api/v1/letter-templates/generic_notice", json={"body": body})
    assert reply.status_code == 200, reply.get_json()

    def write(instance_id):
        with app.app_context():
            letter = letters.write_letter(
                instance_id, "generic_notice", {"body": "Your request."}, None, None
            )
            db.session.commit()
            return letter.id

    return write


def test_a_letter_of_the_instance_downloads_as_a_pdf(app, petra, review, letter_of):
    letter_id = letter_of(review["id"])
    page = petra.page(f"/instances/{review['id']}")
    link = f"/instances/{review['id']}/letters/{letter_id}.pdf"
    assert f'href="{link}"' in page

    reply = petra.get(link)

    assert reply.status_code == 200
    assert reply.mimetype == "application/pdf"
    assert reply.data.startswith(b"%PDF")
    assert "attachment" in reply.headers["Content-Disposition"]
    with app.app_context():
        [read] = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "letter.read")
        ).all()
        assert (read.actor_id, read.details["letter_id"]) == (petra.user_id, letter_id)


def test_a_letter_is_not_served_under_another_instance(
    petra, review, letter_of, start_instance
):
    letter_id = letter_of(review["id"])
    other = start_instance(business_key="REV-2")

    reply = petra.get(f"/instances/{other['id']}/letters/{letter_id}.pdf")

    assert reply.status_code == 404
    assert b"%PDF" not in reply.data
