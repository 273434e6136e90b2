"""Letter templates: sandboxed rendering, versions, the context every letter gets."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.errors import Unprocessable
from app.extensions import db
from app.models import AuditEvent
from app.services import letters, mail
from tests.bpmn import chain, document, user_task

PAGE = "<html><head><title>{title}</title></head><body>{body}</body></html>"


def page(body: str, title: str = "Notice {{ reference }}") -> str:
    return PAGE.format(title=title, body=body)


@pytest.fixture
def instance_id(deploy, start_instance):
    reply = deploy(document(chain("letter_case", user_task("review"))), "lc.bpmn")
    assert reply.status_code == 201, reply.get_json()
    return start_instance("letter_case", business_key="REQ-7")["id"]


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


def write(instance_id: str, body: str, values: dict, key: str = "note") -> str:
    letters.deploy_template(key, page(body))
    return letters.write_letter(instance_id, key, values, None, None).html


def test_a_value_is_escaped_so_a_script_in_it_stays_text(instance_id, ctx):
    html = write(instance_id, "<p>{{ name }}</p>", {"name": "<script>x()</script>"})

    assert "<script>" not in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html


def test_a_missing_value_is_letter_incomplete_naming_the_variable(instance_id, ctx):
    letters.deploy_template("note", page("<p>{{ name }} {{ body }}</p>"))

    with pytest.raises(Unprocessable) as refused:
        letters.write_letter(instance_id, "note", {"body": "secret text"}, None, None)

    assert refused.value.code == "letter-incomplete"
    assert refused.value.errors == [
        {"field": "values.name", "message": "is required by the template"}
    ]
    assert "secret text" not in str(refused.value.detail)


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__ }}",
        "{{ ''['__class__'] }}",
        "{{ reference.__class__.__mro__ }}",
        "{% set x = organisation._secret %}",
    ],
)
def test_a_template_reaching_for_private_attributes_is_refused_when_saved(ctx, body):
    with pytest.raises(Unprocessable) as refused:
        letters.deploy_template("sneaky", page(body))

    assert refused.value.code == "letter-template-invalid"
    assert letters.latest_template("sneaky") is None


def test_the_sandbox_refuses_unsafe_calls_at_render_time(instance_id, ctx):
    # No underscore in the source: only the sandbox stands between this and a call.
    letters.deploy_template("mro", page("{{ name.mro() }}"))

    with pytest.raises(Unprocessable) as refused:
        letters.write_letter(instance_id, "mro", {"name": str}, None, None)

    assert refused.value.code == "letter-refused"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html><body>no title</body></html>", "needs a <title>"),
        (page("{% if %}"), "line 1"),
        (page("{{ x"), "line 1"),
    ],
)
def test_a_template_that_does_not_compile_or_has_no_title_is_refused(
    ctx, body, message
):
    with pytest.raises(Unprocessable) as refused:
        letters.deploy_template("broken", body)

    assert message in refused.value.errors[0]["message"]


def test_the_same_content_is_a_no_op_and_other_content_the_next_version(ctx):
    first, created = letters.deploy_template("note", page("one"))
    again, created_again = letters.deploy_template("note", page("one"))
    second, _ = letters.deploy_template("note", page("two"))

    assert (first.version, created) == (1, True)
    assert (again.id, created_again) == (first.id, False)
    assert second.version == 2
    assert [v.version for v in letters.versions("note")] == [1, 2]


def test_the_context_carries_organisation_today_reference_and_deadlines(
    app, instance_id, ctx, frozen_clock
):
    from app.services import deadlines

    deadlines.set_deadline(
        instance_id, "reply", start=frozen_clock(), period="P1M", article="Art 12(3)"
    )
    body = (
        "{{ organisation.name }}|{{ organisation.authority_name }}|{{ today|date }}|"
        "{{ reference }}|{% for d in deadlines %}{{ d.name }} {{ d.article }} "
        "{{ d.due_at|date }}{% endfor %}"
    )

    html = write(instance_id, body, {})

    assert app.config["CONTROLLER_NAME"] in html
    assert "Autoriteit Persoonsgegevens" in html
    assert "2 March 2026" in html
    assert "REQ-7" in html
    assert "reply Art 12(3) 2 April 2026" in html


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-03-03", "3 March 2026"),
        # 23:30 UTC is already the next day in Amsterdam.
        ("2026-03-03T23:30:00+00:00", "4 March 2026"),
    ],
)
def test_the_date_filter_writes_the_day_in_the_organisations_zone(
    instance_id, ctx, value, shown
):
    assert shown in write(instance_id, "{{ when|date }}", {"when": value})


def test_the_title_is_the_subject_and_the_letter_keeps_its_version(instance_id, ctx):
    letters.deploy_template("note", page("one", title="About {{ reference }}"))
    old = letters.write_letter(instance_id, "note", {}, "a@example.org", None)
    letters.deploy_template("note", page("two"))

    assert old.subject_line == "About REQ-7"
    assert (old.template_version, old.recipient) == (1, "a@example.org")
    assert "one" in old.html
    newer = letters.write_letter(instance_id, "note", {}, None, None)
    assert newer.template_version == 2


def test_writing_a_letter_is_audited_without_its_content(instance_id, ctx):
    write(instance_id, "{{ body }}", {"body": "private words"})

    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "letter.written")
    ).one()
    assert event.instance_id == instance_id
    assert event.details["template"] == "note"
    assert "private words" not in str(event.details)


def test_the_pdf_is_made_with_non_latin_text(instance_id, ctx):
    letters.deploy_template("note", page("<h1>Łódź — 東京</h1><p>{{ body }}</p>"))
    letter = letters.write_letter(instance_id, "note", {"body": "ünïcode"}, None, None)

    assert letters.pdf(letter).startswith(b"%PDF")


def test_the_pdf_never_loads_an_image_the_template_names(instance_id, ctx):
    letters.deploy_template("note", page('<img src="/etc/passwd"><p>text</p>'))
    letter = letters.write_letter(instance_id, "note", {}, None, None)

    assert letters.pdf(letter).startswith(b"%PDF")


def test_plain_text_is_made_from_the_html():
    html = page("<p>Dear <b>you</b>,</p><ul><li>one</li></ul><style>p{}</style>")

    assert mail.plain_text(html) == "Dear you,\n\n- one\n"


HEAD = page(
    "<header>{head}</header>{{% block body %}}{{% endblock %}}",
    title="{{% block title %}}{{% endblock %}}",
)
CHILD = '{% extends "letterhead" %}{% block title %}Our answer{% endblock %}'
CHILD += "{% block body %}<p>{{ body }}</p>{% endblock %}"


def test_a_letter_builds_on_the_letterhead_and_follows_its_edits(instance_id, ctx):
    letters.deploy_template("letterhead", HEAD.format(head="First Street 1"))
    letters.deploy_template("answer", CHILD)
    first = letters.write_letter(instance_id, "answer", {"body": "Hello"}, None, None)

    letters.deploy_template("letterhead", HEAD.format(head="Second Street 2"))
    second = letters.write_letter(instance_id, "answer", {"body": "Again"}, None, None)

    assert "First Street 1" in first.html and "<p>Hello</p>" in first.html
    assert first.subject_line == "Our answer"
    assert "Second Street 2" in second.html and "First Street 1" not in second.html


def test_a_letter_whose_letterhead_is_missing_is_refused(instance_id, ctx):
    letters.deploy_template("answer", CHILD)

    with pytest.raises(Unprocessable) as refused:
        letters.write_letter(instance_id, "answer", {"body": "Hello"}, None, None)

    assert refused.value.code == "letter-failed"
