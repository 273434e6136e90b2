"""The inbox, a task form, an instance diagram and the designer, in Chromium."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.models import HumanTask
from app.services import definitions, instances
from tests.browser.conftest import screenshot, sign_in

ROOT = Path(__file__).parent.parent.parent
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
# The server checks the pattern; the browser does not, so the message is the server's.
PREPARE_FORM = {
    "title": "Prepare the review",
    "type": "object",
    "properties": {
        "reference": {
            "title": "Case reference",
            "description": "Two capital letters, a dash and four digits, as AB-1234.",
            "type": "string",
            "pattern": "^[A-Z]{2}-[0-9]{4}$",
        },
        "summary": {"title": "Summary", "type": "string", "minLength": 1},
    },
    "required": ["reference", "summary"],
    "additionalProperties": False,
}


def review_copy(process_id: str, prepare_name: str = "Prepare the review") -> bytes:
    """The bundled two-step review (with its diagram) under another id and form."""
    xml = (ROOT / "workflows" / "two_step_review.bpmn").read_text()
    xml = xml.replace('"two_step_review"', f'"{process_id}"')
    xml = xml.replace('value="review_prepare"', 'value="browser_prepare"')
    name = escape(prepare_name, {'"': "&quot;"})
    return xml.replace('name="Prepare the review"', f'name="{name}"').encode()


@pytest.fixture
def review(app, review_process):
    """Three instances of a review waiting on their first task, due days apart."""

    def start(process_id: str = "browser_review", name: str = "Prepare the review"):
        with app.app_context():
            definitions.deploy(
                review_copy(process_id, name),
                f"{process_id}.bpmn",
                uploaded_forms={"browser_prepare": PREPARE_FORM},
            )
            started = []
            for key, days in (("REV-LATER", 9), ("REV-SOONEST", 2), ("REV-MIDDLE", 5)):
                instance = instances.start(process_id, {}, key, None)
                task = db.session.scalar(
                    select(HumanTask).where(HumanTask.instance_id == instance.id)
                )
                task.due_at = clock.now() + timedelta(days=days)
                started.append(instance.id)
            db.session.commit()
            return started

    return start


def inbox_keys(page: Page, role: str = "privacy_officer") -> list[str]:
    queue = f'section.queue[aria-labelledby="queue-{role}"]'
    cases = page.locator(f"{queue} tbody tr td:nth-child(3) a")
    return [text.strip() for text in cases.all_inner_texts()]


def test_an_officer_works_a_task_from_the_queue_to_the_next_step(
    page, web_user, review
):
    review()
    web_user("olga", "privacy_officer", "dpo")

    sign_in(page, "olga")
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    assert inbox_keys(page) == ["REV-SOONEST", "REV-MIDDLE", "REV-LATER"]
    screenshot(page, "inbox")

    first = page.locator('section.queue[aria-labelledby="queue-privacy_officer"] tr')
    first.nth(1).get_by_role("button", name="Claim").click()
    expect(first.nth(1)).to_contain_text("you")
    first.nth(1).get_by_role("link").first.click()

    expect(page.locator("h1")).to_have_text("Prepare the review")
    page.get_by_label("Case reference").fill("ab 12")
    page.get_by_label("Summary").fill("CCTV at the staff entrance")
    page.get_by_role("button", name="Complete the task").click()

    expect(page.get_by_role("alert")).to_contain_text("Some fields need correcting")
    error = page.locator(".field-error")
    expect(error).to_have_count(1)
    expect(error).to_contain_text("Case reference")
    expect(page.get_by_label("Case reference")).to_have_value("ab 12")
    expect(page.get_by_label("Summary")).to_have_value("CCTV at the staff entrance")
    screenshot(page, "task-form", full_page=True)
    task_url = page.url

    page.get_by_label("Case reference").fill("AB-1234")
    page.get_by_role("button", name="Complete the task").click()
    expect(page.get_by_text("Task completed")).to_be_visible()
    assert inbox_keys(page) == ["REV-MIDDLE", "REV-LATER"]
    assert inbox_keys(page, "dpo") == ["REV-SOONEST"]

    page.goto(task_url)
    page.get_by_role("link", name="REV-SOONEST").click()
    diagram = page.locator("#diagram")
    expect(diagram).to_have_attribute("data-rendered", "true")
    expect(diagram).to_have_attribute("data-active", "approve")
    assert "prepare" in (diagram.get_attribute("data-completed") or "").split()
    expect(page.locator(".djs-element.state-active")).to_have_count(1)
    screenshot(page, "instance")


def test_a_designer_renames_a_task_checks_deploys_and_sees_the_new_version(
    app, page, web_user, review_process
):
    web_user("dana", "process_designer")

    sign_in(page, "dana")
    page.get_by_role("navigation").get_by_role("link", name="Designer").click()
    expect(page.get_by_role("heading", name="Process designer")).to_be_visible()
    page.locator('#workflow-files a.open-file[href*="two_step_review.bpmn"]').click()
    expect(page.locator("#designer-canvas")).to_have_attribute("data-ready", "true")

    page.locator('.djs-element[data-element-id="prepare"]').click()
    expect(page.locator("#prop-id")).to_contain_text("prepare")
    page.locator("#prop-name").fill("Prepare the review with the DPO")
    page.locator("#validate-button").click()
    results = page.locator("#designer-results")
    expect(results).to_have_attribute("data-outcome", "valid")
    screenshot(page, "designer")

    page.locator("#deploy-button").click()
    expect(results).to_have_attribute("data-outcome", "deployed")
    expect(page.locator("#deploy-message")).to_contain_text("version 2")
    page.locator("#deploy-list-link").click()
    version = page.locator('#definition-two_step_review tr[data-version="2"]')
    expect(version).to_be_visible()
    with app.app_context():
        latest = definitions.get_definition("two_step_review").versions[-1]
        assert "Prepare the review with the DPO" in latest.bpmn_xml


def test_a_broken_process_shows_its_problems_beside_the_element(
    page, web_user, review_process
):
    web_user("dana", "process_designer")
    sign_in(page, "dana")
    page.goto("/designer/edit?file=two_step_review.bpmn")
    expect(page.locator("#designer-canvas")).to_have_attribute("data-ready", "true")

    page.locator('.djs-element[data-element-id="prepare"]').click()
    page.locator("#prop-form").fill("no_such_form")
    page.locator("#validate-button").click()

    expect(page.locator("#designer-results")).to_have_attribute(
        "data-outcome", "problems"
    )
    expect(page.locator("#designer-problems li").first).to_contain_text("no_such_form")
    expect(
        page.locator('.djs-element.has-problem[data-element-id="prepare"]')
    ).to_be_visible()


def test_markup_in_a_task_title_is_shown_as_text_and_never_run(page, web_user, review):
    review("hostile_review", HOSTILE)
    web_user("olga", "privacy_officer")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

    sign_in(page, "olga")
    link = page.locator("section.queue tbody tr th a").first
    expect(link).to_have_text(HOSTILE)
    link.click()
    expect(page.locator("h1")).to_have_text(HOSTILE)

    assert dialogs == []
    assert page.locator("section img[src=x], main script:not([src])").count() == 0
