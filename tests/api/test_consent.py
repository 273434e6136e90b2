"""Consent (Art 7) end to end: grant, withdraw, renew and lapse, with time moved."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

import pytest

from app.extensions import db
from app.models import ConsentEvent, OutboundDelivery, OutboundEvent
from app.services import letters, scheduler
from tests.conftest import ROOT

PURPOSE = "marketing.communications.email"
JANE = {"email": "jane@example.org"}
NOTICE_V1 = "We send you our newsletter by e-mail, at most twice a month."
NOTICE_V2 = "We send you our newsletter and partner offers by e-mail."


@pytest.fixture
def renewal_process(app, deploy):
    """The bundled consent_renewal process, and the letters it writes."""
    with app.app_context():
        letters.deploy_directory(ROOT / "letters")
        db.session.commit()
    bpmn = (ROOT / "workflows" / "consent_renewal.bpmn").read_bytes()
    reply = deploy(bpmn, "consent_renewal.bpmn")
    assert reply.status_code in (200, 201), reply.get_json()


@pytest.fixture
def notice(dpo):
    return publish(dpo, NOTICE_V1)


def publish(dpo, text, material=False):
    reply = dpo.post(
        "/api/v1/consent/notices",
        json={"purpose": PURPOSE, "text": text, "language": "en", "material": material},
    )
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def grant(officer, identities=JANE, **extra):
    body = {
        "identities": identities,
        "purpose": PURPOSE,
        "channel": "web",
        "mechanism": "checkbox on sign-up form",
        **extra,
    }
    return officer.post("/api/v1/consents", json=body)


@pytest.fixture
def yearly(dpo):
    reply = dpo.put(
        f"/api/v1/consent/purposes/{PURPOSE}",
        json={"renewal_interval": "P1Y", "answer_window": "P30D"},
    )
    assert reply.status_code == 200, reply.get_json()


@pytest.fixture
def subscriber(admin):
    reply = admin.post(
        "/api/v1/subscribers",
        json={
            "url": "https://hooks.example/crm",
            "event_types": ["consent.withdrawn", "consent.lapsed"],
        },
    )
    assert reply.status_code == 201


def queued(app, event_type):
    with app.app_context():
        rows = db.session.execute(
            db.select(OutboundEvent.payload)
            .join(OutboundDelivery, OutboundDelivery.event_id == OutboundEvent.id)
            .where(OutboundEvent.event_type == event_type)
        )
        return [payload for (payload,) in rows]


def event_count(app):
    with app.app_context():
        return db.session.scalar(db.select(db.func.count(ConsentEvent.id)))


def path_of(url):
    return urlsplit(url).path


def test_a_grant_records_the_notice_version_and_its_hash(officer, notice):
    reply = grant(officer)

    granted = reply.get_json()
    assert reply.status_code == 201, granted
    assert granted["state"] == "active"
    assert granted["notice_version"] == 1
    assert granted["notice_sha256"] == hashlib.sha256(NOTICE_V1.encode()).hexdigest()
    assert notice["text_sha256"] == granted["notice_sha256"]
    assert granted["withdrawal_url"].startswith(
        "http://127.0.0.1:5000/consent/withdraw/"
    )
    [event] = granted["events"]
    assert (event["kind"], event["channel"]) == ("granted", "web")
    assert event["mechanism"] == "checkbox on sign-up form"
    assert event["recorded_by_id"] == officer.user_id


def test_notices_are_numbered_per_purpose_and_listed(dpo, officer):
    publish(dpo, NOTICE_V1)
    publish(dpo, NOTICE_V2, material=True)

    listed = officer.get(f"/api/v1/consent/notices?purpose={PURPOSE}").get_json()

    assert [(n["version"], n["material"]) for n in listed["items"]] == [
        (1, False),
        (2, True),
    ]


def test_a_notice_for_an_unknown_purpose_is_refused(dpo):
    reply = dpo.post(
        "/api/v1/consent/notices",
        json={
            "purpose": "newsletters",
            "text": "x",
            "language": "en",
            "material": False,
        },
    )

    assert reply.status_code == 422
    assert reply.get_json()["code"] == "unknown-purpose"
    assert dpo.get("/api/v1/consent/notices").get_json()["items"] == []


def test_an_officer_may_not_publish_notices(officer):
    reply = officer.post(
        "/api/v1/consent/notices",
        json={"purpose": PURPOSE, "text": "x", "language": "en", "material": False},
    )

    assert reply.status_code == 403


def test_a_childs_consent_needs_parental_authorisation(app, officer, notice):
    refused = grant(officer, age=13)
    allowed = grant(officer, age=13, parental_authorisation="signed form by parent")

    assert refused.status_code == 422
    assert "Art 8(1)" in refused.get_json()["detail"]
    assert refused.get_json()["errors"][0]["field"] == "parental_authorisation"
    assert allowed.status_code == 201
    assert event_count(app) == 1


def test_a_grant_without_a_published_notice_is_refused(officer):
    reply = grant(officer)

    assert reply.status_code == 422
    assert reply.get_json()["code"] == "notice-not-published"


def test_withdrawal_by_one_api_call_is_effective_at_once(
    app, officer, notice, subscriber
):
    consent_id = grant(officer).get_json()["id"]

    reply = officer.post(
        "/api/v1/consents/withdraw", json={"identities": JANE, "purpose": PURPOSE}
    )
    again = officer.post(
        "/api/v1/consents/withdraw", json={"identities": JANE, "purpose": PURPOSE}
    )

    assert reply.status_code == 200
    assert reply.get_json()["state"] == "withdrawn"
    assert again.status_code == 200
    assert [e["kind"] for e in again.get_json()["events"]] == ["granted", "withdrawn"]
    assert queued(app, "consent.withdrawn") == [
        {"consent_id": consent_id, "purpose": PURPOSE}
    ]


def test_a_withdrawal_for_an_unknown_subject_is_a_404_and_changes_nothing(
    app, officer, notice, subscriber
):
    grant(officer)
    before = event_count(app)

    reply = officer.post(
        "/api/v1/consents/withdraw",
        json={"identities": {"email": "nobody@example.org"}, "purpose": PURPOSE},
    )

    problem = reply.get_json()
    assert reply.status_code == 404
    assert problem["code"] == "consent-subject-unknown"
    assert "nobody@example.org" not in reply.get_data(as_text=True)
    assert "(email)" in problem["detail"]
    assert event_count(app) == before
    assert queued(app, "consent.withdrawn") == []


def test_the_signed_link_withdraws_on_post_only(
    app, client, officer, notice, subscriber
):
    granted = grant(officer).get_json()
    link = path_of(granted["withdrawal_url"])

    page = client.get(link)
    unchanged = officer.get(f"/api/v1/consents/{granted['id']}").get_json()
    done = client.post(link)
    after = officer.get(f"/api/v1/consents/{granted['id']}").get_json()

    assert page.status_code == 200
    assert '<form method="post">' in page.get_data(as_text=True)
    assert unchanged["state"] == "active"
    assert done.status_code == 200
    assert "withdrawn" in done.get_data(as_text=True)
    assert after["state"] == "withdrawn"
    assert after["events"][-1]["mechanism"] == "signed withdrawal link"
    assert after["events"][-1]["recorded_via"] == "subject"
    assert len(queued(app, "consent.withdrawn")) == 1


def test_a_tampered_link_is_refused(app, client, officer, notice):
    link = path_of(grant(officer).get_json()["withdrawal_url"])
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")

    reply = client.post(tampered)

    assert reply.status_code == 404
    assert "not valid" in reply.get_data(as_text=True)
    assert event_count(app) == 1


def test_a_grant_after_withdrawal_is_a_new_event(officer, notice):
    grant(officer)
    officer.post(
        "/api/v1/consents/withdraw", json={"identities": JANE, "purpose": PURPOSE}
    )

    again = grant(officer, channel="app", mechanism="toggle in settings")

    assert again.get_json()["state"] == "active"
    kinds = [e["kind"] for e in again.get_json()["events"]]
    assert kinds == ["granted", "withdrawn", "granted"]


def renewal_mail(officer, instance_id):
    outbox = officer.get(f"/api/v1/mail?instance_id={instance_id}").get_json()
    [message] = outbox["items"]
    detail = officer.get(f"/api/v1/mail/{message['id']}").get_json()
    return message, detail


def renewal_link(detail):
    return path_of(
        re.search(r'href="([^"]*/consent/renew/[^"]+)"', detail["body_html"])[1]
    )


def test_a_renewal_due_by_interval_is_asked_and_renewed_by_link(
    client, cli_sweep, officer, yearly, notice, renewal_process, frozen_clock
):
    consent_id = grant(officer).get_json()["id"]
    early = cli_sweep()
    frozen_clock.advance(days=370)

    started = cli_sweep()
    asked = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    message, detail = renewal_mail(officer, asked["renewal_instance_id"])
    link = renewal_link(detail)
    page = client.get(link)
    still_asked = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    renewed = client.post(link)
    after = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    instance = officer.get(f"/api/v1/instances/{asked['renewal_instance_id']}")

    assert "started 0" in early
    assert "started 1" in started
    assert asked["state"] == "renewal_requested"
    assert message["to"] == JANE["email"]
    assert message["status"] == "held"
    assert NOTICE_V1 in detail["body_html"]
    assert page.status_code == 200 and still_asked["state"] == "renewal_requested"
    assert renewed.status_code == 200, renewed.get_data(as_text=True)
    assert after["state"] == "active"
    assert [e["kind"] for e in after["events"]] == [
        "granted",
        "renewal_requested",
        "renewed",
    ]
    assert after["renew_by"] > asked["renew_by"]
    assert instance.get_json()["status"] == "completed"
    assert client.post(link).status_code == 422


def test_a_renewal_without_an_answer_lapses_when_the_window_passes(
    app, cli_sweep, officer, yearly, notice, renewal_process, frozen_clock, subscriber
):
    consent_id = grant(officer).get_json()["id"]
    frozen_clock.advance(days=366)
    assert "started 1 consent renewals" in cli_sweep()

    frozen_clock.advance(days=20)
    with app.app_context():
        scheduler.sweep()
    waiting = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    frozen_clock.advance(days=15)
    with app.app_context():
        scheduler.sweep()
    lapsed = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    withdraw = officer.post(
        "/api/v1/consents/withdraw", json={"identities": JANE, "purpose": PURPOSE}
    )

    assert waiting["state"] == "renewal_requested"
    assert lapsed["state"] == "lapsed"
    assert [e["kind"] for e in lapsed["events"]] == [
        "granted",
        "renewal_requested",
        "lapsed",
    ]
    assert queued(app, "consent.lapsed") == [
        {"consent_id": consent_id, "purpose": PURPOSE}
    ]
    assert withdraw.status_code == 422
    assert withdraw.get_json()["code"] == "consent-not-active"


@pytest.fixture
def cli_sweep(app):
    def run():
        result = app.test_cli_runner().invoke(args=["consent", "sweep"])
        assert result.exit_code == 0, result.output
        return result.output

    return run


def test_a_material_notice_change_asks_again_and_a_minor_one_does_not(
    app, cli_sweep, dpo, officer, notice, renewal_process, frozen_clock
):
    consent_id = grant(officer).get_json()["id"]
    publish(dpo, NOTICE_V1 + " (typo fixed)", material=False)
    minor = cli_sweep()
    publish(dpo, NOTICE_V2, material=True)
    material = cli_sweep()

    asked = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    _, detail = renewal_mail(officer, asked["renewal_instance_id"])
    renewed = officer.post(f"/api/v1/consents/{consent_id}/renew", json={})

    assert "started 0" in minor
    assert "started 1" in material
    assert asked["state"] == "renewal_requested"
    assert NOTICE_V2 in detail["body_html"]
    assert renewed.status_code == 200
    assert renewed.get_json()["notice_version"] == 3
    assert renewed.get_json()["events"][-1]["notice_version"] == 3
    assert "started 0" in cli_sweep()


def test_withdrawing_during_a_renewal_ends_its_instance(
    app, cli_sweep, dpo, officer, notice, renewal_process, frozen_clock
):
    consent_id = grant(officer).get_json()["id"]
    publish(dpo, NOTICE_V2, material=True)
    cli_sweep()
    instance_id = officer.get(f"/api/v1/consents/{consent_id}").get_json()[
        "renewal_instance_id"
    ]

    reply = officer.post(
        "/api/v1/consents/withdraw", json={"identities": JANE, "purpose": PURPOSE}
    )
    instance = officer.get(f"/api/v1/instances/{instance_id}").get_json()

    assert reply.get_json()["state"] == "withdrawn"
    assert instance["status"] == "completed"
    assert [
        d["state"]
        for d in officer.get(f"/api/v1/instances/{instance_id}/deadlines").get_json()[
            "items"
        ]
        if d["name"] == "answer"
    ] == ["cancelled"]


def test_the_demonstration_export_shows_every_event_with_the_notice(
    dpo, officer, notice
):
    grant(officer)
    officer.post(
        "/api/v1/consents/withdraw", json={"identities": JANE, "purpose": PURPOSE}
    )

    shown = dpo.get(
        "/api/v1/consents/demonstrate?identity_type=email&identity_value=jane@example.org"
    )
    as_csv = dpo.get(
        "/api/v1/consents/demonstrate?identity_type=email"
        "&identity_value=JANE@example.org&format=csv"
    )
    by_officer = officer.get(
        "/api/v1/consents/demonstrate?identity_type=email&identity_value=x@example.org"
    )

    [item] = shown.get_json()["consents"]
    assert [e["kind"] for e in item["events"]] == ["granted", "withdrawn"]
    first = item["events"][0]
    assert first["notice_text"] == NOTICE_V1
    assert first["notice_sha256"] == hashlib.sha256(NOTICE_V1.encode()).hexdigest()
    assert first["mechanism"] == "checkbox on sign-up form"
    assert as_csv.mimetype == "text/csv"
    assert NOTICE_V1 in as_csv.get_data(as_text=True)
    assert by_officer.status_code == 403


def test_consent_events_are_never_changed(app, officer, notice):
    grant(officer)

    with app.app_context():
        event = db.session.scalar(db.select(ConsentEvent))
        event.mechanism = "rewritten"
        with pytest.raises(Exception, match="append-only"):
            db.session.flush()
        db.session.rollback()
        db.session.delete(db.session.scalar(db.select(ConsentEvent)))
        with pytest.raises(Exception, match="append-only"):
            db.session.flush()
        db.session.rollback()

    assert event_count(app) == 1


def test_audit_and_events_carry_no_identity(app, dpo, officer, notice, subscriber):
    grant(officer)
    officer.post(
        "/api/v1/consents/withdraw", json={"identities": JANE, "purpose": PURPOSE}
    )

    with app.app_context():
        from app.models import AuditEvent

        details = db.session.scalars(db.select(AuditEvent.details)).all()
        payloads = db.session.scalars(db.select(OutboundEvent.payload)).all()

    assert "jane@example.org" not in repr(details) + repr(payloads)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "pigeon"}, "channel"),
        ({"identities": {}}, "identities"),
        ({"mechanism": ""}, "mechanism"),
        ({"notice_version": 0}, "notice_version"),
        ({"age": -1}, "age"),
    ],
    ids=["channel", "no-identity", "no-mechanism", "notice-version", "age"],
)
def test_a_grant_that_is_not_valid_is_a_422_and_records_nothing(
    app, officer, notice, body, field
):
    reply = grant(officer, **body)

    assert reply.status_code == 422
    assert field in [error["field"] for error in reply.get_json()["errors"]]
    assert event_count(app) == 0


@pytest.mark.parametrize("period", ["one year", "P0D", "P1Y2M"])
def test_a_purpose_setting_that_is_no_period_is_refused(dpo, period):
    reply = dpo.put(
        f"/api/v1/consent/purposes/{PURPOSE}", json={"renewal_interval": period}
    )

    assert reply.status_code == 422
    assert reply.get_json()["errors"][0]["field"] == "renewal_interval"
    assert dpo.get("/api/v1/consent/purposes").get_json()["items"] == []


@pytest.mark.parametrize(
    ("role", "method", "url", "status"),
    [
        ("privacy_officer", "put", f"/api/v1/consent/purposes/{PURPOSE}", 403),
        ("manager", "post", "/api/v1/consents", 403),
        ("manager", "post", "/api/v1/consents/withdraw", 403),
        ("process_designer", "get", "/api/v1/consent/notices", 403),
        ("privacy_officer", "get", "/api/v1/consents/demonstrate", 403),
        ("admin", "get", "/api/v1/consent/notices", 200),
    ],
)
def test_who_may_do_what_with_consent(make_user, role, method, url, status):
    caller = make_user("someone", role)

    reply = getattr(caller, method)(url, json={})

    assert reply.status_code == status


def test_the_api_needs_a_token(client):
    assert client.post("/api/v1/consents", json={}).status_code == 401


def test_without_the_renewal_process_a_due_consent_stays_active(
    app, cli_sweep, dpo, officer, notice
):
    consent_id = grant(officer).get_json()["id"]
    publish(dpo, NOTICE_V2, material=True)

    output = cli_sweep()
    verified = app.test_cli_runner().invoke(args=["audit", "verify"])

    assert "started 0" in output
    assert officer.get(f"/api/v1/consents/{consent_id}").get_json()["state"] == (
        "active"
    )
    assert event_count(app) == 1
    assert verified.exit_code == 0, verified.output


def test_a_tampered_renewal_link_is_refused(
    client, cli_sweep, dpo, officer, notice, renewal_process, frozen_clock
):
    consent_id = grant(officer).get_json()["id"]
    publish(dpo, NOTICE_V2, material=True)
    cli_sweep()
    asked = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    _, detail = renewal_mail(officer, asked["renewal_instance_id"])
    link = renewal_link(detail)
    withdraw_salted = link.replace("/renew/", "/withdraw/")

    assert client.post(link + "x").status_code == 404
    assert client.post(withdraw_salted).status_code == 404
    assert officer.get(f"/api/v1/consents/{consent_id}").get_json()["state"] == (
        "renewal_requested"
    )


def test_a_renewal_link_expires_with_its_answer_window(
    client, cli_sweep, dpo, officer, notice, renewal_process, frozen_clock
):
    consent_id = grant(officer).get_json()["id"]
    publish(dpo, NOTICE_V2, material=True)
    cli_sweep()
    asked = officer.get(f"/api/v1/consents/{consent_id}").get_json()
    _, detail = renewal_mail(officer, asked["renewal_instance_id"])
    frozen_clock.advance(days=32)

    reply = client.post(renewal_link(detail))
    after = officer.get(f"/api/v1/consents/{consent_id}").get_json()

    assert reply.status_code == 422
    assert "expired" in reply.get_data(as_text=True)
    assert after["state"] == "renewal_requested"
    assert after["events"][-1]["kind"] == "renewal_requested"
