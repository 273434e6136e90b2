"""Deploying BPMN: versions by content, and every refusal named by element."""

from __future__ import annotations

import pytest

from app.services import definitions
from tests.bpmn import (
    chain,
    document,
    script_task,
    service_task,
    timer_catch,
    user_task,
)
from tests.conftest import ROOT

REVIEW = (ROOT / "workflows" / "two_step_review.bpmn").read_bytes()
FORMS = {
    name: (ROOT / "forms" / f"{name}.json").read_bytes()
    for name in ("review_prepare", "review_approve")
}


def test_deploy_stores_a_version_with_its_user_tasks(deploy):
    reply = deploy(REVIEW, "two_step_review.bpmn", FORMS)

    assert reply.status_code == 201
    body = reply.get_json()
    assert body["created"] is True
    assert body["process_id"] == "two_step_review"
    assert body["version"]["number"] == 1
    roles = {task["bpmn_id"]: task["role"] for task in body["version"]["user_tasks"]}
    assert roles == {"prepare": "privacy_officer", "approve": "dpo"}


def test_deploying_the_same_content_twice_changes_nothing(deploy, designer):
    first = deploy(REVIEW, "two_step_review.bpmn", FORMS).get_json()
    second = deploy(REVIEW, "two_step_review.bpmn", FORMS)

    assert second.status_code == 200
    assert second.get_json()["created"] is False
    assert second.get_json()["version"]["id"] == first["version"]["id"]
    versions = designer.get("/api/v1/definitions/two_step_review").get_json()[
        "versions"
    ]
    assert len(versions) == 1


def test_changed_content_is_a_new_version_and_instances_keep_theirs(
    deploy, designer, officer
):
    deploy(REVIEW, "two_step_review.bpmn", FORMS)
    started = officer.post(
        "/api/v1/instances", json={"process_id": "two_step_review"}
    ).get_json()
    renamed = REVIEW.replace(b'name="Prepare the review"', b'name="Prepare it"')

    second = deploy(renamed, "two_step_review.bpmn", FORMS).get_json()

    assert second["version"]["number"] == 2
    old = officer.get(f"/api/v1/instances/{started['id']}").get_json()
    assert old["definition_version"] == 1
    assert old["tasks"][0]["title"] == "Prepare the review"
    newer = officer.post(
        "/api/v1/instances", json={"process_id": "two_step_review"}
    ).get_json()
    assert newer["definition_version"] == 2
    listing = designer.get("/api/v1/definitions/two_step_review").get_json()
    running = {v["number"]: v["running_instances"] for v in listing["versions"]}
    assert running == {1: 1, 2: 1}


def test_validate_checks_without_storing(designer):
    process = document(chain("checked", user_task("review")))

    reply = designer.post(
        "/api/v1/definitions/validate", data=process, content_type="application/xml"
    )

    assert reply.status_code == 200
    assert reply.get_json()["valid"] is True
    assert designer.get("/api/v1/definitions").get_json()["items"] == []


def _problem(reply, status):
    assert reply.status_code == status, reply.get_json()
    assert reply.mimetype == "application/problem+json"
    return reply.get_json()


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&x;</bpmn:definitions>"""

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&c;</bpmn:definitions>"""


@pytest.mark.parametrize(
    ("bpmn", "code"),
    [
        (b"<bpmn:definitions", "malformed-xml"),
        (b"not xml at all", "malformed-xml"),
        (XXE, "malformed-xml"),
        (LAUGHS, "malformed-xml"),
        (b"<html><body>hello</body></html>", "malformed-xml"),
    ],
    ids=["truncated", "text", "external-entity", "entity-expansion", "not-bpmn"],
)
def test_unsafe_or_malformed_xml_is_a_400(deploy, designer, bpmn, code):
    body = _problem(deploy(bpmn), 400)

    assert body["code"] == code
    assert "passwd" not in body["detail"]
    assert designer.get("/api/v1/definitions").get_json()["items"] == []


@pytest.mark.parametrize(
    ("process", "element_id", "words"),
    [
        (
            document(chain("p", service_task("call", "no.such.operator"))),
            "call",
            "no.such.operator",
        ),
        (
            document(chain("p", timer_catch("wait", "PT72H"), user_task("t"))),
            "wait",
            'write "PT72H"',
        ),
        (
            document(chain("p", user_task("fill", form="missing_form"))),
            "fill",
            "missing_form",
        ),
        (
            document(chain("p", script_task("calc", "x = 1\ny = (\n"))),
            "calc",
            "line",
        ),
        (
            document(chain("p", script_task("sneaky", "import os"))),
            "sneaky",
            "cannot run",
        ),
    ],
    ids=["unknown-operator", "unquoted-timer", "unknown-form", "syntax", "import"],
)
def test_a_bpmn_that_cannot_run_is_refused_naming_the_element(
    deploy, designer, process, element_id, words
):
    body = _problem(deploy(process), 422)

    assert body["code"] == "invalid-bpmn"
    problems = {item["element_id"]: item["message"] for item in body["errors"]}
    assert element_id in problems
    assert words in problems[element_id]
    assert designer.get("/api/v1/definitions").get_json()["items"] == []


def test_a_file_without_executable_process_is_refused(deploy):
    process = document(chain("p", user_task("t")).replace('"true"', '"false"'))

    body = _problem(deploy(process), 422)

    assert "isExecutable" in body["detail"]


def test_a_lane_that_names_no_role_is_refused(deploy):
    lanes = (
        '<bpmn:laneSet id="ls"><bpmn:lane id="Lane_marketing" name="Marketing">'
        "<bpmn:flowNodeRef>t</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>"
    )
    process = document(chain("p", user_task("t"), lanes=lanes))

    body = _problem(deploy(process), 422)

    assert body["errors"][0]["element_id"] == "Lane_marketing"


def test_a_message_catch_without_correlation_is_refused(deploy):
    catch = (
        '<bpmn:intermediateCatchEvent id="wait">'
        '<bpmn:messageEventDefinition messageRef="m" /></bpmn:intermediateCatchEvent>'
    )
    process = document(chain("p", catch), extra='<bpmn:message id="m" name="paid" />')

    body = _problem(deploy(process), 422)

    assert body["errors"][0]["element_id"] == "wait"
    assert "processVariableCorrelation" in body["errors"][0]["message"]


def test_a_body_over_the_limit_is_a_413(app, deploy):
    limit = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 1024
    try:
        body = _problem(deploy(REVIEW), 413)
    finally:
        app.config["MAX_CONTENT_LENGTH"] = limit

    assert body["status"] == 413


def test_only_designers_deploy(officer):
    reply = officer.post(
        "/api/v1/definitions", data=REVIEW, content_type="application/xml"
    )

    assert _problem(reply, 403)["code"] == "role-required"


def test_an_unknown_content_type_is_a_415(designer):
    reply = designer.post("/api/v1/definitions", json={"bpmn": "x"})

    assert _problem(reply, 415)["code"] == "unsupported-media-type"


def purposed_task(purpose: str) -> bytes:
    task = (
        '<bpmn:userTask id="weigh" name="Weigh the request">'
        "<bpmn:extensionElements><spiffworkflow:properties>"
        f'<spiffworkflow:property name="purpose" value="{purpose}" />'
        "</spiffworkflow:properties></bpmn:extensionElements></bpmn:userTask>"
    )
    return document(chain("purposed", task))


@pytest.mark.parametrize(
    ("purpose", "hint"),
    [
        ("leave_managment", "Did you mean: leave_management"),
        ("no_such_purpose", None),
    ],
    ids=["typo", "made-up"],
)
def test_a_task_purpose_the_registry_does_not_know_is_refused(
    deploy, designer, demo_catalogue, purpose, hint
):
    body = _problem(deploy(purposed_task(purpose)), 422)

    assert body["code"] == "invalid-bpmn"
    [problem] = body["errors"]
    assert problem["element_id"] == "weigh"
    assert f"'{purpose}'" in problem["message"]
    assert (
        "neither a Fides data use nor a purpose of the organisation"
        in (problem["message"])
    )
    if hint:
        assert hint in problem["message"]
    else:
        assert "Did you mean" not in problem["message"]
    assert designer.get("/api/v1/definitions").get_json()["items"] == []


def test_an_unknown_purpose_is_refused_before_any_catalogue_is_loaded(deploy, designer):
    body = _problem(deploy(purposed_task("compliance_reveiw")), 422)

    [problem] = body["errors"]
    assert "'compliance_reveiw'" in problem["message"]
    assert "Did you mean: compliance_review" in problem["message"]
    assert designer.get("/api/v1/definitions").get_json()["items"] == []


@pytest.mark.parametrize("purpose", ["employment", "data_subject_rights"])
def test_a_fides_use_or_a_service_purpose_deploys_without_a_catalogue(deploy, purpose):
    assert deploy(purposed_task(purpose)).status_code == 201


@pytest.mark.parametrize("purpose", ["employment", "leave_management"])
def test_a_fides_use_or_an_organisation_purpose_deploys(
    deploy, demo_catalogue, purpose
):
    assert deploy(purposed_task(purpose)).status_code == 201


def test_every_bundled_workflow_deploys_over_the_demo_catalogue(app, demo_catalogue):
    with app.app_context():
        deployed = definitions.deploy_directory(ROOT / "workflows", ROOT / "forms")

    names = sorted(d.version.filename for d in deployed)
    assert names == sorted(p.name for p in (ROOT / "workflows").glob("*.bpmn"))
