"""Fixtures: one app per session over a migrated database, cleaned per test."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import flask_migrate
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from app import clock, create_app
from app.extensions import db
from app.registry import sample_data
from app.services import catalogue, connectors, signatures, users

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def demo_systems_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo's sample systems, built once per session in a temporary folder."""
    path = tmp_path_factory.mktemp("systems") / "demo_systems.sqlite3"
    url = f"sqlite:///{path}"
    sample_data.create(url)
    return url


@pytest.fixture(scope="session")
def app(database_url: str, demo_systems_url: str) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SECRET_KEY": "test-only-secret",
            "WORKFLOWS_DIR": str(ROOT / "workflows"),
            "FORMS_DIR": str(ROOT / "forms"),
            "LETTERS_DIR": str(ROOT / "letters"),
            "DEMO_SYSTEMS_URL": demo_systems_url,
            "SCHEDULER_ENABLED": False,
        }
    )
    with app.app_context():
        _empty_database()
        flask_migrate.upgrade()
    yield app
    app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _empty_database() -> None:
    db.drop_all()
    db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()


@pytest.fixture(autouse=True)
def _clean_tables(app: Flask) -> Iterator[None]:
    yield
    with app.app_context():
        db.session.rollback()
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Caller:
    """A test client that sends one user's bearer token."""

    client: FlaskClient
    token: str
    user_id: int
    name: str

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(
            url, headers=self._headers(kwargs.pop("headers", None)), **kwargs
        )

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(
            url, headers=self._headers(kwargs.pop("headers", None)), **kwargs
        )

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.client.put(
            url, headers=self._headers(kwargs.pop("headers", None)), **kwargs
        )

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.client.delete(
            url, headers=self._headers(kwargs.pop("headers", None)), **kwargs
        )


@pytest.fixture
def make_user(app: Flask, client: FlaskClient) -> Callable[..., Caller]:
    def make(name: str, *roles: str) -> Caller:
        with app.app_context():
            user = users.create_user(name, list(roles))
            token = users.create_token(user, "test")
            db.session.commit()
            return Caller(client, token, user.id, name)

    return make


@pytest.fixture
def admin(make_user: Callable[..., Caller]) -> Caller:
    return make_user("ada", "admin")


@pytest.fixture
def designer(make_user: Callable[..., Caller]) -> Caller:
    return make_user("dora", "process_designer")


@pytest.fixture
def officer(make_user: Callable[..., Caller]) -> Caller:
    return make_user("olga", "privacy_officer")


@pytest.fixture
def dpo(make_user: Callable[..., Caller]) -> Caller:
    return make_user("dirk", "dpo")


@pytest.fixture
def deploy(designer: Caller) -> Callable[..., Any]:
    """Deploy BPMN bytes (and optional forms) as a designer; returns the reply."""

    def deploy_bpmn(
        bpmn: bytes, filename: str = "test.bpmn", forms: dict[str, bytes] | None = None
    ) -> Any:
        if not forms:
            return designer.post(
                f"/api/v1/definitions?filename={filename}",
                data=bpmn,
                content_type="application/xml",
            )
        files = [(_file(name, raw)) for name, raw in forms.items()]
        return designer.post(
            "/api/v1/definitions",
            data={"bpmn": (_io(bpmn), filename), "forms": files},
            content_type="multipart/form-data",
        )

    return deploy_bpmn


def _io(raw: bytes) -> Any:
    import io

    return io.BytesIO(raw)


def _file(name: str, raw: bytes) -> tuple[Any, str]:
    return (_io(raw), f"{name}.json")


@pytest.fixture
def review_process(app: Flask) -> None:
    """The bundled two-step review, deployed with its forms as `make run` does."""
    with app.app_context():
        from app.services import definitions

        definitions.deploy_directory(ROOT / "workflows", ROOT / "forms")
        db.session.commit()


@pytest.fixture
def start_instance(officer: Caller) -> Callable[..., dict[str, Any]]:
    def start(process_id: str = "two_step_review", **body: Any) -> dict[str, Any]:
        reply = officer.post(
            "/api/v1/instances", json={"process_id": process_id, **body}
        )
        assert reply.status_code == 201, reply.get_json()
        return reply.get_json()

    return start


@pytest.fixture
def frozen_clock() -> Iterator[clock.Frozen]:
    """The service's clock, stopped at a known instant; tests move it forward."""
    frozen = clock.Frozen(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    clock.set_source(frozen)
    yield frozen
    clock.reset()


@pytest.fixture
def demo_catalogue(app: Flask) -> None:
    """The demo's registry catalogue, loaded as `flask demo` loads it."""
    with app.app_context():
        catalogue.load_catalogue(catalogue.DEMO)
        db.session.commit()


@pytest.fixture
def systems(app, tmp_path, monkeypatch):
    """A fresh sample database for this test alone, mapped by the demo catalogue."""
    path = tmp_path / "systems.sqlite3"
    url = f"sqlite:///{path}"
    sample_data.create(url)
    monkeypatch.setitem(app.config, "DEMO_SYSTEMS_URL", url)
    with app.app_context():
        catalogue.load_catalogue(catalogue.DEMO)
        db.session.commit()
    yield path
    connectors.dispose_engines()


def query(path, sql: str, **params) -> list[dict]:
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        found = [dict(row._mapping) for row in connection.execute(text(sql), params)]
    engine.dispose()
    return found


@pytest.fixture
def make_endpoint(admin):
    def make(name, action, **mapping):
        reply = admin.post(
            "/api/v1/webhooks/endpoints",
            json={"name": name, "action": action, **mapping},
        )
        assert reply.status_code == 201, reply.get_json()
        return reply.get_json()

    return make


@pytest.fixture
def send(client):
    """POST raw bytes to an endpoint, signed with `secret` unless it is None."""

    def post(name, body, secret=None, *, timestamp=None, key=None, headers=None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = dict(headers or {})
        if secret is not None:
            sent.update(signatures.headers(secret, timestamp or int(time.time()), raw))
        if key is not None:
            sent["Idempotency-Key"] = key
        return client.post(
            f"/webhooks/{name}", data=raw, headers=sent, content_type="application/json"
        )

    return post
