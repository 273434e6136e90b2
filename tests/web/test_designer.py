"""The designer pages: versions with running counts, the modeler, check and deploy."""

from __future__ import annotations

import io
import json
import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import DefinitionVersion
from tests.bpmn import chain, document, service_task, timer_catch, user_task
from tests.conftest import ROOT

REVIEW = (ROOT / "workflows" / "two_step_review.bpmn").read_text(encoding="utf-8")
BPMN_DATA = re.compile(
    r'<script type="application/json" id="bpmn-data">(.*?)</script>', re.S
)


@pytest.fixture
def dora(sign_in_as):
    return sign_in_as("dora", "process_designer")


def page_data(html):
    return json.loads(BPMN_DATA.search(html).group(1))


def stored_versions(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(DefinitionVersion))


def test_the_list_shows_each_version_with_its_running_instances(
    app, review_process, start_instance, dora
):
    start_instance()
    start_instance()
    renamed = REVIEW.replace('name="Prepare the review"', 'name="Prepare it"')
    dora.post("/designer/deploy", {"bpmn": renamed, "filename": "two_step_review.bpmn"})
    start_instance()

    html = dora.page("/designer")

    review = html.split('id="definition-two_step_review"', 1)[1].split("</article>")[0]
    rows = re.findall(
        r'<tr data-version="(\d+)">.*?<td>([^<]*)</td>\s*<td class="running">(\d+)',
        review,
        re.S,
    )
    assert rows == [("2", "dora", "1"), ("1", "the service", "2")]
    assert "Two-step review" in review


def test_the_list_shows_the_files_of_the_workflows_folder(dora):
    html = dora.page("/designer")

    assert "No process is deployed yet" in html
    for path in sorted((ROOT / "workflows").glob("*.bpmn")):
        assert f"/designer/edit?file={path.name}" in html


def test_a_deployed_version_opens_in_the_modeler_with_its_xml(
    app, review_process, dora
):
    with app.app_context():
        version = db.session.scalars(select(DefinitionVersion)).first()
        version_id, xml = version.id, version.bpmn_xml

    html = dora.page(f"/designer/edit?version={version_id}")

    data = page_data(html)
    assert data["xml"] == xml
    assert "deadlines.set" in data["operators"]
    assert "review_prepare" in data["forms"]
    assert 'id="validate-button"' in html
    assert 'id="deploy-button"' in html


def test_a_workflow_file_opens_in_the_modeler(dora):
    html = dora.page("/designer/edit?file=two_step_review.bpmn")

    data = page_data(html)
    assert data["xml"] == REVIEW
    assert data["filename"] == "two_step_review.bpmn"
    assert "<bpmn:" not in BPMN_DATA.search(html).group(1)


@pytest.mark.parametrize(
    "query",
    [
        "file=../README.md",
        "file=..%2Fpyproject.toml",
        "file=/etc/passwd",
        f"file={ROOT / 'workflows' / 'two_step_review.bpmn'}",
        "file=missing.bpmn",
        "version=9999",
        "version=abc",
        "version=99999999999999999999",
        "",
    ],
)
def test_only_listed_files_and_stored_versions_open(dora, query):
    reply = dora.get(f"/designer/edit?{query}")

    assert reply.status_code == 404
    assert "no BPMN file or deployed version" in reply.get_data(as_text=True)


@pytest.mark.parametrize(
    ("bpmn", "element", "words"),
    [
        (
            document(chain("p", service_task("call", "no.such.operator"))),
            "call",
            "no.such.operator",
        ),
        (
            document(chain("p", user_task("fill", form="missing_form"))),
            "fill",
            "missing_form",
        ),
        (
            document(chain("p", timer_catch("wait", "PT72H"), user_task("t"))),
            "wait",
            "PT72H",
        ),
    ],
    ids=["unknown-operator", "unknown-form", "unquoted-timer"],
)
def test_checking_a_broken_bpmn_names_the_element_and_stores_nothing(
    app, dora, bpmn, element, words
):
    reply = dora.post("/designer/validate", {"bpmn": bpmn, "filename": "p.bpmn"})

    assert reply.status_code == 200
    body = reply.get_json()
    assert body["ok"] is False
    problems = {p["element"]: p["message"] for p in body["problems"]}
    assert words in problems[element]
    assert stored_versions(app) == 0


def test_checking_malformed_xml_says_so_without_an_element(app, dora):
    reply = dora.post("/designer/validate", {"bpmn": "<bpmn:definitions"})

    body = reply.get_json()
    assert body["ok"] is False
    assert body["problems"][0]["element"] is None
    assert stored_versions(app) == 0


def test_checking_a_sound_bpmn_answers_ok_and_stores_nothing(app, review_process, dora):
    before = stored_versions(app)
    renamed = REVIEW.replace('name="Prepare the review"', 'name="Prepare it"')

    reply = dora.post("/designer/validate", {"bpmn": renamed})

    assert reply.get_json() == {
        "ok": True,
        "problems": [],
        "process_id": "two_step_review",
    }
    assert stored_versions(app) == before


@pytest.mark.parametrize("path", ["/designer/validate", "/designer/deploy"])
def test_a_post_without_the_csrf_token_is_refused(app, review_process, dora, path):
    reply = dora.client.post(path, data={"bpmn": REVIEW})

    assert reply.status_code == 400
    assert stored_versions(app) == 6


def test_deploying_a_change_stores_the_next_version(app, review_process, dora):
    renamed = REVIEW.replace('name="Prepare the review"', 'name="Prepare it"')

    reply = dora.post(
        "/designer/deploy", {"bpmn": renamed, "filename": "two_step_review.bpmn"}
    )

    body = reply.get_json()
    assert body["ok"] is True
    assert body["created"] is True
    assert body["version"] == 2
    assert body["message"] == "Deployed as version 2."
    html = dora.page(body["list_url"])
    assert '<tr data-version="2">' in html


def test_deploying_identical_content_is_reported_unchanged(app, review_process, dora):
    reply = dora.post(
        "/designer/deploy", {"bpmn": REVIEW, "filename": "two_step_review.bpmn"}
    )

    body = reply.get_json()
    assert body["created"] is False
    assert body["message"] == "Unchanged: already version 1."
    assert stored_versions(app) == 6


def test_a_bpmn_sent_as_a_file_keeps_its_exact_bytes(app, review_process, dora):
    upload = (io.BytesIO(REVIEW.encode()), "two_step_review.bpmn")

    reply = dora.post(
        "/designer/deploy",
        {"bpmn": upload, "filename": "two_step_review.bpmn"},
        content_type="multipart/form-data",
    )

    assert reply.get_json()["message"] == "Unchanged: already version 1."


def test_deploying_a_broken_bpmn_is_a_422_and_stores_nothing(app, dora):
    broken = document(chain("p", user_task("fill", form="missing_form")))

    reply = dora.post("/designer/deploy", {"bpmn": broken})

    assert reply.status_code == 422
    assert reply.get_json()["problems"][0]["element"] == "fill"
    assert stored_versions(app) == 0


@pytest.mark.parametrize("role", ["manager", "privacy_officer", "dpo"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/designer"),
        ("get", "/designer/edit?file=two_step_review.bpmn"),
        ("post", "/designer/validate"),
        ("post", "/designer/deploy"),
    ],
)
def test_other_roles_are_refused(app, sign_in_as, role, method, path):
    session = sign_in_as("mona", role)

    reply = getattr(session, method)(
        path, **({"data": {"bpmn": REVIEW}} if method == "post" else {})
    )

    assert reply.status_code == 403
    assert stored_versions(app) == 0


def test_an_admin_may_use_the_designer(sign_in_as):
    assert "Process designer" in sign_in_as("ada", "admin").page("/designer")


def test_a_hostile_process_name_is_escaped_on_the_list(app, dora):
    hostile = document(
        chain("p", user_task("t")).replace(
            'isExecutable="true"',
            'name="&lt;script&gt;alert(1)&lt;/script&gt;" isExecutable="true"',
        )
    )
    assert dora.post("/designer/deploy", {"bpmn": hostile}).get_json()["ok"]

    html = dora.page("/designer")

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_modeler_page_keeps_the_strict_content_policy(dora):
    reply = dora.get("/designer/edit?file=two_step_review.bpmn")

    policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "unsafe" not in policy
    assert " style=" not in reply.get_data(as_text=True)
