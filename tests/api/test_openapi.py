"""The API describes itself: an OpenAPI 3 document and a browsable view, offline."""

from __future__ import annotations

import re


def test_the_openapi_document_lists_every_resource(client):
    spec = client.get("/api/openapi.json").get_json()

    assert spec["openapi"].startswith("3.")
    for path in (
        "/api/v1/definitions",
        "/api/v1/definitions/validate",
        "/api/v1/instances/{instance_id}",
        "/api/v1/tasks/{task_id}/complete",
        "/api/v1/messages",
        "/api/v1/deadlines",
        "/api/health",
    ):
        assert path in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    problem = spec["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]
    assert "application/problem+json" in problem


def test_the_browsable_view_loads_only_the_apps_own_assets(client):
    page = client.get("/api/docs").get_data(as_text=True)

    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/static/vendor/") for source in sources)
    for source in sources:
        reply = client.get(source)
        assert reply.status_code == 200
        reply.close()


def test_an_unknown_path_is_a_problem_document(client):
    reply = client.get("/api/v1/nothing-here")

    assert reply.status_code == 404
    assert reply.mimetype == "application/problem+json"
