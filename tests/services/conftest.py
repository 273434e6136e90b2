"""Fixtures for the service tests: a local HTTP receiver and an OpenDSR request."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.extensions import db
from app.services import signatures
from tests.api.test_webhooks import INTAKE, _request


class Receiver:
    """Records every request; answers `status` (a number, or a list taken in turn)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status: int | list[int] = 204
        self.lock = threading.Lock()
        self.url = ""

    def answer(self) -> int:
        with self.lock:
            if isinstance(self.status, list):
                return self.status.pop(0) if self.status else 204
            return self.status

    def record(self, path: str, headers: dict[str, str], body: bytes) -> None:
        with self.lock:
            self.requests.append({"path": path, "headers": headers, "body": body})


@pytest.fixture
def receiver(app, monkeypatch):
    monkeypatch.setitem(app.config, "OUTBOUND_ALLOW_PRIVATE", True)  # it is loopback
    recorder = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            recorder.record(self.path, dict(self.headers), body)
            self.send_response(recorder.answer())
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield recorder
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield
        db.session.rollback()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # The local receiver must be reached directly, whatever the environment says.
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def dsr_request(app, deploy, admin, client):
    """An instance started by an OpenDSR webhook; its endpoint's secret."""
    assert deploy(INTAKE, "dsar_access.bpmn").status_code == 201
    endpoint = admin.post(
        "/api/v1/webhooks/endpoints",
        json={
            "name": "dsr",
            "action": "opendsr",
            "request_processes": {"access": "dsar_access"},
        },
    ).get_json()
    raw = json.dumps(_request()).encode()
    reply = client.post(
        "/webhooks/dsr",
        data=raw,
        headers=signatures.headers(endpoint["secret"], int(time.time()), raw),
    )
    assert reply.status_code == 202
    return reply.get_json()["instance_id"], endpoint["secret"]
