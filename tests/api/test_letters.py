"""Letters over the API: templates edited without a deploy, letters from a process."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent
from app.registry import sample_data
from tests.bpmn import chain, document, service_task, user_task
from tests.conftest import ROOT

TEMPLATES = "/api/v1/letter-templates"
GENERIC = (ROOT / "letters" / "generic_notice.html").read_text()
SUBJECT_EMAIL = sample_data.rows()[sample_data.hr_employees][-1]["email"]
FORM = json.dumps(
    {
        "type": "object",
        "properties": {
            "email": {"type": "string"},
            "template": {"type": "string"},
            "values": {"type": "object"},
            "attach": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["email", "template", "values", "attach"],
    }
).encode()
LETTER_PROCESS = document(
    chain(
        "letter_flow",
        user_task("prepare", form="letter_input"),
        service_task(
            "write",
            "letters.write",
            template="template",
            values="values",
            to="email",
        ),
        service_task(
            "send",
            "letters.send",
            letter_id='result["letter_id"]',
            to="email",
            attach="attach",
            identities='{"email": email}',
        ),
        user_task("follow_up"),
    )
)


@pytest.fixture
def templates(dpo):
    reply = dpo.put(f"{TEMPLATES}/generic_notice", json={"body": GENERIC})
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


@pytest.fixture
def letter_flow(deploy, templates):
    reply = deploy(LETTER_PROCESS, "letter_flow.bpmn", {"letter_input": FORM})
    assert reply.status_code == 201, reply.get_json()


@pytest.fixture
def run_flow(letter_flow, start_instance, dpo):
    """Start the flow and complete its first task; the instance and the reply."""

    def run(body=None, **data):
        instance = start_instance("letter_flow", business_key="DSAR-42")
        tasks = dpo.get(f"/api/v1/tasks?instance_id={instance['id']}").get_json()
        submission = {
            "template": "generic_notice",
            "email": SUBJECT_EMAIL,
            "values": {} if body is None else {"body": body},
            "attach": [],
            **data,
        }
        reply = dpo.post(
            f"/api/v1/tasks/{tasks['items'][0]['id']}/complete",
            json={"data": submission},
        )
        return instance, reply

    return run


def letters_of(caller, instance_id):
    reply = caller.get(f"/api/v1/instances/{instance_id}/letters")
    assert reply.status_code == 200
    return reply.get_json()["items"]


def test_a_process_writes_a_letter_downloadable_as_html_and_pdf(run_flow, officer):
    instance, reply = run_flow(body="We have extended the deadline.")
    assert reply.status_code == 200, reply.get_json()

    [letter] = letters_of(officer, instance["id"])
    assert (letter["template"], letter["version"]) == ("generic_notice", 1)
    assert letter["subject"] == "A notice from Example Organisation B.V. (DSAR-42)"
    assert letter["recipient"] == SUBJECT_EMAIL
    html = officer.get(f"/api/v1/letters/{letter['id']}/html")
    assert html.mimetype == "text/html"
    assert "script-src" not in html.headers["Content-Security-Policy"]
    assert html.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "We have extended the deadline." in html.get_data(as_text=True)
    pdf = officer.get(f"/api/v1/letters/{letter['id']}/pdf")
    assert pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")
    assert "generic_notice.pdf" in pdf.headers["Content-Disposition"]
    meta = officer.get(f"/api/v1/letters/{letter['id']}").get_json()
    assert meta["instance_id"] == instance["id"]


def test_a_value_with_a_script_is_shown_as_text(run_flow, officer):
    instance, _ = run_flow(body="<script>alert(1)</script>")

    [letter] = letters_of(officer, instance["id"])
    html = officer.get(f"/api/v1/letters/{letter['id']}/html").get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ({}, "letter-incomplete", "values.body"),
        ({"body": "x", "template": "no_such"}, "letter-template-unknown", "template"),
        ({"body": "x", "email": "not-an-address"}, "mail-address-invalid", "to"),
        ({"body": "x", "attach": ["everything"]}, "mail-attachment-unknown", "attach"),
    ],
)
def test_a_letter_that_cannot_be_written_or_sent_refuses_the_step(
    run_flow, dpo, officer, data, code, field
):
    instance, reply = run_flow(**data)

    assert reply.status_code == 422
    problem = reply.get_json()
    assert problem["code"] == code
    assert [error["field"] for error in problem["errors"]] == [field]
    assert letters_of(officer, instance["id"]) == []
    assert officer.get(f"/api/v1/mail?instance_id={instance['id']}").get_json() == {
        "items": [],
        "total": 0,
        "page": 1,
        "page_size": 50,
    }
    tasks = dpo.get(f"/api/v1/tasks?instance_id={instance['id']}").get_json()
    assert [task["bpmn_id"] for task in tasks["items"]] == ["prepare"]


def test_an_edit_makes_version_2_and_old_letters_keep_version_1(run_flow, dpo, officer):
    first, _ = run_flow(body="one")
    edited = GENERIC.replace("Kind regards", "With regards")

    reply = dpo.put(f"{TEMPLATES}/generic_notice", json={"body": edited})
    second, _ = run_flow(body="two")

    assert reply.get_json()["version"] == 2
    assert [v["version"] for v in reply.get_json()["versions"]] == [1, 2]
    assert letters_of(officer, first["id"])[0]["version"] == 1
    assert letters_of(officer, second["id"])[0]["version"] == 2
    old = letters_of(officer, first["id"])[0]["id"]
    assert "Kind regards" in officer.get(f"/api/v1/letters/{old}/html").get_data(
        as_text=True
    )


def test_saving_the_same_content_again_changes_nothing(templates, dpo):
    reply = dpo.put(f"{TEMPLATES}/generic_notice", json={"body": GENERIC})

    assert reply.status_code == 200
    assert reply.get_json()["version"] == templates["version"] == 1
    listed = dpo.get(TEMPLATES).get_json()["items"]
    assert [(t["key"], t["version"]) for t in listed] == [("generic_notice", 1)]


@pytest.mark.parametrize(
    ("key", "body", "field"),
    [
        ("generic_notice", "<p>no title</p>", "body"),
        ("generic_notice", "<title>x</title>{% for %}", "body"),
        ("generic_notice", "<title>x</title>{{ ''.__class__.__mro__ }}", "body"),
        ("Not-A-Key", "<title>x</title>", "key"),
    ],
)
def test_a_template_that_does_not_compile_is_refused_and_nothing_changes(
    templates, dpo, key, body, field
):
    reply = dpo.put(f"{TEMPLATES}/{key}", json={"body": body})

    assert reply.status_code == 422
    assert reply.get_json()["code"] == "letter-template-invalid"
    assert reply.get_json()["errors"][0]["field"] == field
    current = dpo.get(f"{TEMPLATES}/generic_notice").get_json()
    assert (current["version"], current["body"]) == (1, GENERIC)


def test_an_unknown_template_or_letter_is_404(dpo):
    assert dpo.get(f"{TEMPLATES}/nothing").status_code == 404
    assert dpo.get("/api/v1/letters/nothing/pdf").status_code == 404


@pytest.mark.parametrize(
    ("role", "read", "write"),
    [
        ("dpo", 200, 200),
        ("admin", 200, 200),
        ("privacy_officer", 200, 403),
        ("process_designer", 200, 403),
        ("manager", 403, 403),
    ],
)
def test_who_may_read_and_edit_templates(templates, make_user, role, read, write):
    caller = make_user("someone", role)

    assert caller.get(TEMPLATES).status_code == read
    assert caller.get(f"{TEMPLATES}/generic_notice").status_code == read
    edited = GENERIC + "<!-- edited -->"
    reply = caller.put(f"{TEMPLATES}/generic_notice", json={"body": edited})
    assert reply.status_code == write


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("dpo", 200),
        ("privacy_officer", 200),
        ("manager", 403),
        ("process_designer", 403),
    ],
)
def test_who_may_read_letters(run_flow, officer, make_user, role, status):
    instance, _ = run_flow(body="x")
    [letter] = letters_of(officer, instance["id"])
    caller = make_user("someone", role)

    for path in ("", "/html", "/pdf"):
        assert caller.get(f"/api/v1/letters/{letter['id']}{path}").status_code == status
    listing = caller.get(f"/api/v1/instances/{instance['id']}/letters")
    assert listing.status_code == status


def test_the_openapi_document_describes_letters_and_mail(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]

    for path in (
        "/api/v1/letter-templates/{key}",
        "/api/v1/instances/{instance_id}/letters",
        "/api/v1/letters/{letter_id}/pdf",
        "/api/v1/mail",
        "/api/v1/mail/{mail_id}/attachments/{name}",
    ):
        assert path in paths
    pdf = paths["/api/v1/letters/{letter_id}/pdf"]["get"]["responses"]["200"]
    assert "application/pdf" in pdf["content"]


def test_opening_a_letter_is_kept_in_the_audit_trail_without_its_text(
    app, run_flow, officer
):
    instance, _ = run_flow(body="We have extended the deadline.")
    [letter] = letters_of(officer, instance["id"])

    officer.get(f"/api/v1/letters/{letter['id']}/html")
    officer.get(f"/api/v1/letters/{letter['id']}/pdf")

    with app.app_context():
        reads = db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "letter.read")
            .order_by(AuditEvent.id)
        ).all()
        assert [(e.actor_id, e.details["form"]) for e in reads] == [
            (officer.user_id, "html"),
            (officer.user_id, "pdf"),
        ]
        assert all(e.details["letter_id"] == letter["id"] for e in reads)
        stored = json.dumps([e.details for e in reads])
        assert SUBJECT_EMAIL not in stored
        assert "extended the deadline" not in stored
