"""The mail outbox: held locally by default, delivered over SMTP when configured."""

from __future__ import annotations

import email
import io
import json
import socketserver
import threading
import zipfile
from datetime import timedelta
from email import policy

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEvent, MailMessage
from app.services import mail
from tests.api import test_letters
from tests.api.test_letters import SUBJECT_EMAIL

# The letter process of the letters tests, run here to fill the outbox.
templates = test_letters.templates
letter_flow = test_letters.letter_flow
run_flow = test_letters.run_flow

OUTBOX = "/api/v1/mail"


class SmtpSink:
    """Just enough SMTP for smtplib (no STARTTLS): records each message it is given."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                envelope: dict = {"rcpt": []}
                self._say("220 sink ESMTP")
                while line := self.rfile.readline():
                    verb = line.decode().strip().split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self._say("250-sink", "250-8BITMIME", "250 SIZE 10000000")
                    elif verb == "MAIL":
                        envelope["from"] = line.decode().strip()
                        self._say("250 OK")
                    elif verb == "RCPT":
                        envelope["rcpt"].append(line.decode().strip())
                        self._say("250 OK")
                    elif verb == "DATA":
                        self._say("354 end with <CRLF>.<CRLF>")
                        envelope["data"] = self._data()
                        sink.messages.append(envelope)
                        envelope = {"rcpt": []}
                        self._say("250 queued")
                    elif verb == "QUIT":
                        self._say("221 bye")
                        return
                    else:
                        self._say("250 OK")

            def _data(self) -> bytes:
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                return b"".join(lines)

            def _say(self, *lines: str) -> None:
                self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]


@pytest.fixture
def smtp(app, monkeypatch):
    sink = SmtpSink()
    thread = threading.Thread(
        target=sink.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    for key, value in {
        "MAIL_TRANSPORT": "smtp",
        "MAIL_SMTP_HOST": "127.0.0.1",
        "MAIL_SMTP_PORT": sink.port,
        "MAIL_SMTP_STARTTLS": False,
        "MAIL_FROM": "privacy@example.org",
    }.items():
        monkeypatch.setitem(app.config, key, value)
    yield sink
    sink.server.shutdown()
    sink.server.server_close()
    thread.join()


def dispatch(app, **kwargs) -> int:
    with app.app_context():
        return mail.dispatch_due(**kwargs)


def only_mail(caller, instance_id: str) -> dict:
    listing = caller.get(f"{OUTBOX}?instance_id={instance_id}").get_json()
    assert listing["total"] == 1
    return caller.get(f"{OUTBOX}/{listing['items'][0]['id']}").get_json()


def test_the_outbox_holds_the_letter_with_its_attachments(
    run_flow, demo_catalogue, officer
):
    instance, reply = run_flow(
        body="Your data.", attach=["letter_pdf", "subject_export"]
    )
    assert reply.status_code == 200, reply.get_json()

    message = only_mail(officer, instance["id"])
    assert message["status"] == "held"
    assert message["to"] == SUBJECT_EMAIL
    assert message["subject"].endswith("(DSAR-42)")
    assert "Your data." in message["body_text"]
    names = {item["filename"]: item for item in message["attachments"]}
    assert set(names) == {"generic_notice.pdf", "subject-data.json", "subject-data.zip"}
    assert all(item["size"] > 0 for item in names.values())


def test_each_attachment_downloads_as_it_will_be_sent(
    run_flow, demo_catalogue, officer
):
    instance, _ = run_flow(body="x", attach=["subject_export", "letter_pdf"])
    message = only_mail(officer, instance["id"])
    base = f"{OUTBOX}/{message['id']}/attachments"

    document = officer.get(f"{base}/subject-data.json").get_json(force=True)
    archive = zipfile.ZipFile(io.BytesIO(officer.get(f"{base}/subject-data.zip").data))
    pdf = officer.get(f"{base}/generic_notice.pdf")

    assert SUBJECT_EMAIL in json.dumps(document["data"])
    assert "manifest.json" in archive.namelist()
    assert pdf.data.startswith(b"%PDF")
    assert officer.get(f"{base}/other.txt").status_code == 404


def columns(document: dict) -> set[str]:
    return {
        f"{system}.{entity}.{column}"
        for system, entities in document["data"].items()
        for entity, rows in entities.items()
        for row in rows
        for column in row
    }


def test_a_portability_export_holds_only_the_portable_fields(
    run_flow, demo_catalogue, officer
):
    attach = ["subject_export", "portability_export"]
    instance, _ = run_flow(body="x", attach=attach)
    message = only_mail(officer, instance["id"])
    base = f"{OUTBOX}/{message['id']}/attachments"

    full = officer.get(f"{base}/subject-data.json").get_json(force=True)
    portable = officer.get(f"{base}/portable-data.json").get_json(force=True)
    archive = zipfile.ZipFile(io.BytesIO(officer.get(f"{base}/portable-data.zip").data))

    assert columns(portable) and columns(portable) < columns(full)
    assert "manifest.json" in archive.namelist()


def test_queueing_is_audited_with_ids_and_names_only(app, run_flow, demo_catalogue):
    instance, _ = run_flow(body="x", attach=["subject_export"])

    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "mail.queued")
        ).one()
    assert event.instance_id == instance["id"]
    assert event.details["attachments"] == ["subject-data.json", "subject-data.zip"]
    assert SUBJECT_EMAIL not in json.dumps(event.details)


def test_a_rolled_back_change_leaves_no_mail(app, run_flow):
    instance, _ = run_flow(body="x")

    with app.app_context():
        mail.queue("a@example.org", "Subject", "<p>hi</p>", instance["id"])
        db.session.rollback()
        count = db.session.scalar(select(db.func.count()).select_from(MailMessage))
    assert count == 1


def test_smtp_delivers_the_bytes_and_marks_the_mail_sent(
    app, smtp, run_flow, demo_catalogue, officer, frozen_clock
):
    instance, _ = run_flow(body="Delivered text.", attach=["letter_pdf"])
    assert only_mail(officer, instance["id"])["status"] == "queued"

    assert dispatch(app) == 1

    [received] = smtp.messages
    assert SUBJECT_EMAIL in received["rcpt"][0]
    parsed = email.message_from_bytes(received["data"], policy=policy.default)
    assert parsed["Subject"].endswith("(DSAR-42)")
    assert "Delivered text." in parsed.get_body(("plain",)).get_content()
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "generic_notice.pdf"
    assert attachment.get_content().startswith(b"%PDF")
    message = only_mail(officer, instance["id"])
    assert (message["status"], message["attempts"]) == ("sent", 1)
    assert message["sent_at"] is not None
    assert dispatch(app) == 0


def test_an_unreachable_server_is_retried_later_without_addresses_in_the_error(
    app, smtp, run_flow, officer, frozen_clock, monkeypatch
):
    instance, _ = run_flow(body="x")
    smtp.server.server_close()
    monkeypatch.setitem(app.config, "MAIL_TIMEOUT_SECONDS", 1)

    assert dispatch(app) == 1
    failed = only_mail(officer, instance["id"])
    assert (failed["status"], failed["attempts"]) == ("queued", 1)
    assert failed["last_error"] and "@" not in failed["last_error"]
    assert dispatch(app) == 0

    frozen_clock.advance(minutes=5)
    assert dispatch(app) == 1
    assert only_mail(officer, instance["id"])["attempts"] == 2


def test_a_message_is_given_up_after_the_last_attempt(
    app, smtp, run_flow, officer, frozen_clock, monkeypatch
):
    instance, _ = run_flow(body="x")
    smtp.server.server_close()
    monkeypatch.setitem(app.config, "MAIL_MAX_ATTEMPTS", 2)

    for _ in range(2):
        dispatch(app)
        frozen_clock.advance(hours=1)

    assert only_mail(officer, instance["id"])["status"] == "failed"


def test_the_outbox_transport_never_sends(app, run_flow, officer):
    instance, _ = run_flow(body="x")

    assert dispatch(app) == 0
    assert only_mail(officer, instance["id"])["status"] == "held"


def test_the_outbox_filters_by_status_and_pages(run_flow, officer):
    for _ in range(3):
        run_flow(body="x")

    held = officer.get(f"{OUTBOX}?status=held&page_size=2").get_json()
    sent = officer.get(f"{OUTBOX}?status=sent").get_json()

    assert (held["total"], len(held["items"]), held["page_size"]) == (3, 2, 2)
    assert sent["total"] == 0
    assert officer.get(f"{OUTBOX}?status=lost").status_code == 422


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("dpo", 200),
        ("admin", 200),
        ("privacy_officer", 200),
        ("manager", 403),
        ("process_designer", 403),
    ],
)
def test_who_may_read_the_outbox(run_flow, officer, make_user, role, status):
    instance, _ = run_flow(body="x")
    message = only_mail(officer, instance["id"])
    caller = make_user("someone", role)

    assert caller.get(OUTBOX).status_code == status
    assert caller.get(f"{OUTBOX}/{message['id']}").status_code == status


def test_the_cli_dispatches_queued_mail(app, smtp, run_flow, frozen_clock):
    run_flow(body="x")

    result = app.test_cli_runner().invoke(args=["mail", "dispatch"])

    assert result.exit_code == 0, result.output
    assert "attempted 1 messages" in result.output
    assert len(smtp.messages) == 1


def test_a_failed_attempt_waits_longer_each_time(app):
    with app.app_context():
        first, third = mail.backoff(1), mail.backoff(3)
    assert timedelta(seconds=60) <= first < timedelta(seconds=67)
    assert third >= 4 * timedelta(seconds=60)
