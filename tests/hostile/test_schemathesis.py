"""The API against its own OpenAPI document: generated requests, checked replies.

Every operation in /api/openapi.json is called with requests schemathesis derives
from the document, by a user holding every role. No reply may be a server error,
and every reply must have a documented status, content type and body schema.
`HOSTILE_EXAMPLES` sets the examples per operation (default 5).
"""

from __future__ import annotations

import os
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import ROLES

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "5"))
# The short run sends the same requests every time; a longer run explores afresh.
FIXED = "HOSTILE_EXAMPLES" not in os.environ
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app)


# schemathesis' pytest loader (from_fixture) reads a pytest attribute that pytest 9
# removed, so each operation runs as a hypothesis test of its own, inside this one.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_to_its_document(app, make_user, api_schema, mode):
    failures = []
    for number, result in enumerate(api_schema.get_all_operations()):
        operation = result.ok()
        # A caller of its own per operation: one may delete the users it finds.
        caller = make_user(f"fuzzer{number}", *ROLES)
        try:
            _exercise(operation, mode, caller.token)
        except (Exception, BaseExceptionGroup) as failure:  # each operation its turn
            failures.append(f"{operation.label}: {failure}")

    assert not failures, "\n\n".join(failures)


def _exercise(operation, mode, token):
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=FIXED,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case):
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
        )

    try:
        call()
    except Unsatisfiable:
        # Nothing in the document can be made invalid (no parameters, or a path
        # parameter any string fits): schemathesis has no negative case to send.
        if mode is not GenerationMode.NEGATIVE:
            raise


# Odd input found by the runs above, kept as plain regression tests over every route.

HUGE_ID = str(2**31)  # one past INTEGER on PostgreSQL
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000


def _api_routes(app, wanted):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and wanted(rule):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield method, rule.rule


def test_an_id_past_the_integer_column_names_nothing(app, make_user):
    caller = make_user("fuzzer", *ROLES)
    wrong = []
    for method, rule in _api_routes(app, lambda rule: "<int:" in rule.rule):
        url = re.sub(r"<int:\w+>", HUGE_ID, rule)
        url = re.sub(r"<\w+>", "nope", url)
        reply = caller.client.open(
            url, method=method, headers=caller._headers(None), json={}
        )
        if reply.status_code != 404:
            wrong.append(f"{method} {url}: {reply.status_code}")

    assert not wrong, "\n".join(wrong)


def test_a_json_body_nested_too_deeply_is_a_400(app, make_user):
    caller = make_user("fuzzer", *ROLES)
    wrong = []
    for method, rule in _api_routes(app, lambda rule: rule.methods & {"POST", "PUT"}):
        if method not in ("POST", "PUT"):
            continue
        url = re.sub(r"<(\w+:)?\w+>", "nope", rule)
        reply = caller.client.open(
            url,
            method=method,
            headers=caller._headers(None),
            data=DEEP_JSON,
            content_type="application/json",
        )
        if reply.status_code >= 500:
            wrong.append(f"{method} {url}: {reply.status_code}")

    assert not wrong, "\n".join(wrong)


def test_a_signed_webhook_nested_too_deeply_is_refused(
    make_endpoint, send, review_process
):
    endpoint = make_endpoint(
        "dsr", "opendsr", request_processes={"access": "two_step_review"}
    )

    reply = send("dsr", DEEP_JSON, endpoint["secret"])

    assert reply.status_code == 422
    assert reply.get_json()["code"] == "body-not-json"


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("get", "/api/v1/tasks?process_id=a%00b", None),
        ("get", "/api/v1/definitions/a%00b", None),
        ("post", "/api/v1/users", {"name": "a\x00b", "roles": ["dpo"]}),
        ("post", "/api/v1/registry/purposes", {"key": "k", "names": {"a\x00": 1}}),
    ],
    ids=["query", "path", "json-value", "json-key"],
)
def test_a_nul_character_is_a_400_on_every_database(admin, method, url, body):
    reply = getattr(admin, method)(url, json=body)

    assert reply.status_code == 400, reply.get_json()
    assert reply.get_json()["code"] == "nul-character"


def test_a_purpose_key_longer_than_its_column_is_a_422(dpo):
    reply = dpo.post("/api/v1/registry/purposes", json={"key": "a" * 101, "name": "x"})

    assert reply.status_code == 422
    assert [error["field"] for error in reply.get_json()["errors"]] == ["key"]
