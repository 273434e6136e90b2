"""The inbox: the queues in due order, countdowns, filters, claim, paging."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import AuditEvent, Deadline, HumanTask
from app.services import tasks
from app.web.inbox import PAGE_SIZE
from tests.bpmn import chain, document, user_task

HOSTILE = "<script>alert(1)</script>"


def lane_process(process_id, lane, title="Check the request"):
    lanes = (
        f'<bpmn:laneSet id="ls"><bpmn:lane id="lane" name="{lane}">'
        "<bpmn:flowNodeRef>t</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"
    )
    return document(chain(process_id, user_task("t", title), lanes=lanes))


@pytest.fixture
def queue(app, deploy, start_instance):
    """Start instances of a one-task process in a lane; returns their task guids."""

    def make(process_id, lane, count=1, title="Check the request", keys=None):
        reply = deploy(lane_process(process_id, lane, title), f"{process_id}.bpmn")
        assert reply.status_code in (200, 201), reply.get_json()
        keys = keys or [f"{process_id}-{n}" for n in range(count)]
        ids = [start_instance(process_id, business_key=key)["id"] for key in keys]
        with app.app_context():
            return [
                db.session.scalar(
                    select(HumanTask.task_guid).where(HumanTask.instance_id == i)
                )
                for i in ids
            ]

    return make


def set_due(app, due_by_guid):
    with app.app_context():
        for guid, due in due_by_guid.items():
            db.session.get(HumanTask, guid).due_at = due
        db.session.commit()


def claimant(app, guid):
    with app.app_context():
        return db.session.get(HumanTask, guid).claimed_by_id


def rows(page):
    return re.findall(r'<th scope="row"><a href="/tasks/([^"]+)">', page)


def test_tasks_are_listed_soonest_due_first_with_no_due_time_last(
    app, queue, sign_in_as
):
    guids = queue("privacy_review", "Privacy officer", count=4)
    now = clock.now()
    set_due(
        app,
        {
            guids[0]: now + timedelta(days=5),
            guids[1]: None,
            guids[2]: now + timedelta(days=1),
            guids[3]: now + timedelta(days=3),
        },
    )
    browser = sign_in_as("wendy", "privacy_officer")

    page = browser.page("/inbox")

    assert rows(page) == [guids[2], guids[3], guids[0], guids[1]]
    assert "Privacy officer queue" in page
    assert "privacy_review-2" in page


def test_a_manager_does_not_see_a_dpo_lane_task(queue, sign_in_as):
    [dpo_task] = queue("dpo_check", "DPO", title="Sign off the register")
    [manager_task] = queue("leave_check", "Manager", title="Assess the leave")
    manager = sign_in_as("mona", "manager")
    dpo = sign_in_as("dirk2", "dpo")

    seen_by_manager = manager.page("/inbox")
    seen_by_dpo = dpo.page("/inbox")

    assert rows(seen_by_manager) == [manager_task]
    assert "Sign off the register" not in seen_by_manager
    assert rows(seen_by_dpo) == [dpo_task]
    assert manager.get("/inbox?queue=dpo").status_code == 403


def test_overdue_and_due_soon_deadlines_are_marked(
    app, frozen_clock, queue, sign_in_as
):
    [guid] = queue("privacy_review", "Privacy officer")
    with app.app_context():
        instance_id = db.session.get(HumanTask, guid).instance_id
        for kind, due in (
            ("legal", clock.now() + timedelta(days=1)),
            ("internal_target", clock.now() - timedelta(hours=3)),
        ):
            db.session.add(
                Deadline(
                    instance_id=instance_id,
                    name=kind,
                    kind=kind,
                    action="remind",
                    due_at=due,
                )
            )
        db.session.commit()
    browser = sign_in_as("wendy", "privacy_officer")

    page = browser.page("/inbox")

    assert re.search(r'class="due soon"[^>]*>due in 1 day<', page)
    assert re.search(r'class="due overdue"[^>]*>overdue by 3 hours<', page)

    frozen_clock.advance(days=2)
    later = sign_in_as("paul", "privacy_officer").page("/inbox")
    assert re.search(r'class="due overdue"[^>]*>overdue by 1 day<', later)


def test_filters_by_process_and_by_assignee(app, queue, sign_in_as):
    [review] = queue("privacy_review", "Privacy officer")
    [other] = queue("other_review", "Privacy officer")
    browser = sign_in_as("wendy", "privacy_officer")
    browser.post(f"/tasks/{other}/claim")

    assert rows(browser.page("/inbox?process=privacy_review")) == [review]
    assert rows(browser.page("/inbox?assigned=me")) == [other]
    assert rows(browser.page("/inbox?assigned=nobody")) == [review]
    page = browser.page("/inbox?process=privacy_review&assigned=me")
    assert rows(page) == []
    assert "Nothing waiting in your queues that matches these filters." in page
    assert '<option value="privacy_review" selected>' in page


def test_a_claim_then_a_release_returns_to_the_page_asked(app, queue, sign_in_as):
    [guid] = queue("privacy_review", "Privacy officer")
    browser = sign_in_as("wendy", "privacy_officer")

    claimed = browser.post(f"/tasks/{guid}/claim", {"next": f"/tasks/{guid}"})

    assert claimed.status_code == 302
    assert claimed.headers["Location"] == f"/tasks/{guid}"
    assert claimant(app, guid) == browser.user_id
    page = browser.page("/inbox")
    assert "Release" in page and ">you<" in page

    released = browser.post(f"/tasks/{guid}/release")

    assert released.headers["Location"] == "/inbox"
    assert claimant(app, guid) is None
    assert "Claim" in browser.page("/inbox")


def test_claiming_a_task_another_claimed_says_so_and_changes_nothing(
    app, queue, sign_in_as
):
    [guid] = queue("privacy_review", "Privacy officer")
    first = sign_in_as("wendy", "privacy_officer")
    second = sign_in_as("paul", "privacy_officer")
    first.post(f"/tasks/{guid}/claim")

    reply = second.post(f"/tasks/{guid}/claim")

    assert reply.status_code == 409
    assert "Another user has claimed this task." in reply.get_data(as_text=True)
    assert claimant(app, guid) == first.user_id
    assert second.post(f"/tasks/{guid}/release").status_code == 409
    assert claimant(app, guid) == first.user_id


def test_a_claim_without_the_csrf_token_is_refused_and_claims_nothing(
    app, queue, sign_in_as
):
    [guid] = queue("privacy_review", "Privacy officer")
    browser = sign_in_as("wendy", "privacy_officer")

    reply = browser.client.post(f"/tasks/{guid}/claim", data={})

    assert reply.status_code == 400
    assert claimant(app, guid) is None


def test_a_claim_of_another_lanes_task_is_forbidden_and_audited(app, queue, sign_in_as):
    [guid] = queue("dpo_check", "DPO")
    browser = sign_in_as("wendy", "privacy_officer")

    reply = browser.post(f"/tasks/{guid}/claim")

    assert reply.status_code == 403
    assert "lane" in reply.get_data(as_text=True)
    assert claimant(app, guid) is None
    with app.app_context():
        assert db.session.scalar(
            select(AuditEvent).where(AuditEvent.action.like("%denied%"))
        )


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "inbox"]
)
def test_next_may_only_be_a_local_path(app, queue, sign_in_as, target):
    [guid] = queue("privacy_review", "Privacy officer")
    browser = sign_in_as("wendy", "privacy_officer")

    reply = browser.post(f"/tasks/{guid}/claim", {"next": target})

    assert reply.headers["Location"] == "/inbox"


def test_paging_keeps_the_filters_and_shows_each_task_once(
    app, frozen_clock, queue, sign_in_as
):
    # A frozen clock: all tasks are created at one instant, ten share a due time.
    count = PAGE_SIZE + 5
    guids = queue("privacy_review", "Privacy officer", count=count)
    due = clock.now() + timedelta(days=3)
    set_due(app, dict.fromkeys(guids[:10], due))
    browser = sign_in_as("wendy", "privacy_officer")

    first = browser.page("/inbox?process=privacy_review&assigned=nobody")
    link = re.search(r'href="([^"]*after=[^"]*)">Next page', first).group(1)
    link = link.replace("&amp;", "&")
    second = browser.page(link)

    assert "process=privacy_review" in link and "assigned=nobody" in link
    assert len(rows(first)) == PAGE_SIZE
    assert len(rows(second)) == count - PAGE_SIZE
    assert sorted(rows(first) + rows(second)) == sorted(guids)
    assert rows(first)[:10] == sorted(guids[:10])
    assert "Next page" not in second


def test_a_broken_page_link_is_a_plain_400(queue, sign_in_as):
    queue("privacy_review", "Privacy officer")
    browser = sign_in_as("wendy", "privacy_officer")

    reply = browser.get("/inbox?queue=privacy_officer&after=garbage")

    assert reply.status_code == 400
    assert "The page link is not valid" in reply.get_data(as_text=True)


def test_an_unknown_filter_value_is_a_plain_400(sign_in_as):
    browser = sign_in_as("wendy", "privacy_officer")

    reply = browser.get("/inbox?status=deleted")

    assert reply.status_code == 400
    assert "The status filter must be" in reply.get_data(as_text=True)


def test_a_hostile_task_title_is_shown_escaped(queue, sign_in_as):
    queue("hostile", "Privacy officer", title=HOSTILE)
    browser = sign_in_as("wendy", "privacy_officer")

    page = browser.page("/inbox")

    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_an_empty_inbox_says_so(sign_in_as):
    browser = sign_in_as("wendy", "privacy_officer")

    assert "Nothing waiting in your queues." in browser.page("/inbox")


def test_a_user_without_a_work_role_is_refused(sign_in_as):
    browser = sign_in_as("adam", "admin")

    assert browser.get("/inbox").status_code == 403


def test_the_landing_page_is_the_inbox(sign_in_as):
    browser = sign_in_as("wendy", "privacy_officer")

    reply = browser.get("/")

    assert reply.status_code == 302
    assert reply.headers["Location"] == "/inbox"


def test_a_queue_longer_than_the_count_limit_says_more_than(
    queue, sign_in_as, monkeypatch
):
    monkeypatch.setattr(tasks, "COUNT_LIMIT", 2)
    queue("privacy_review", "Privacy officer", count=3)
    petra = sign_in_as("petra", "privacy_officer")

    page = petra.page("/inbox")

    assert "more than 2 tasks" in page
    assert len(rows(page)) == 3
