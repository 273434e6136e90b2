"""Privacy notices (Art 13, 14) from the registry, versioned by content."""

from __future__ import annotations

from typing import Any

import pytest

from app.extensions import db
from app.models import PrivacyNotice
from app.services import catalogue, privacy_notices

API = "/api/v1/privacy-notices"
FIELDS = "/api/v1/registry/fields"
FIELD_KEYS = (
    "name",
    "data_category",
    "purposes",
    "legal_basis",
    "art9_condition",
    "origin",
    "retention",
    "recipients",
    "automated_decision",
    "automated_decision_logic",
    "column",
)
pytestmark = pytest.mark.usefixtures("demo_catalogue")


def generate(caller, scope: str, status: int = 201) -> dict[str, Any]:
    reply = caller.post(f"{API}/generate", json={"scope": scope})
    assert reply.status_code == status, reply.get_json()
    return reply.get_json()


def html_of(caller, scope: str, version: int) -> bytes:
    reply = caller.get(f"{API}/{scope}/versions/{version}/html")
    assert reply.status_code == 200
    return reply.get_data()


def put_field(caller, field_id: str, **changes: Any) -> None:
    """Replace a field through the registry API, changing only what is named."""
    current = caller.get(f"{FIELDS}/{field_id}").get_json()
    body = {key: current[key] for key in FIELD_KEYS if current.get(key) is not None}
    reply = caller.put(f"{FIELDS}/{field_id}", json={**body, **changes})
    assert reply.status_code == 200, reply.get_json()


def by_key(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return next(item for item in items if item["key"] == key)


def test_a_purpose_notice_states_basis_recipients_retention_rights_and_complaint(
    dpo,
):
    notice = generate(dpo, "purpose:payroll_tax")

    [purpose] = notice["content"]["purposes"]
    assert notice["version"] == 1
    assert notice["public_url"] == "/privacy/purpose:payroll_tax/1"
    assert [(b["key"], b["article"]) for b in purpose["legal_bases"]] == [
        ("contract", "Art 6(1)(b)"),
        ("legal_obligation", "Art 6(1)(c)"),
    ]
    assert [r["name"] for r in purpose["recipients"]] == [
        "Belastingdienst (Dutch tax authority)"
    ]
    bsn = next(r for r in purpose["retention"] if r["name"].startswith("Citizen"))
    assert (bsn["period"], bsn["anchor"]) == ("P7Y", "end_of_employment")
    rights = {r["article"] for r in notice["content"]["rights"]}
    assert {"Art 15", "Art 16", "Art 17", "Art 18", "Art 20"} <= rights
    assert notice["content"]["complaint"]["authority"] == "Autoriteit Persoonsgegevens"
    page = html_of(dpo, "purpose:payroll_tax", 1).decode()
    assert "Art 6(1)(c) GDPR" in page
    assert "7 years after the end of employment" in page
    assert "Art 77 GDPR" in page
    assert "privacy@example.org" in page


def test_a_purpose_notice_names_transfers_with_their_safeguards(dpo):
    notice = generate(dpo, "purpose:essential.service.notifications.email")

    [purpose] = notice["content"]["purposes"]
    [transfer, sub_processor] = purpose["transfers"]
    assert (transfer["name"], transfer["country"]) == (
        "Postbird transactional e-mail",
        "US",
    )
    assert transfer["safeguard_article"] == "Art 46(2)(c)"
    assert sub_processor["name"] == "Cloudhost Inc. (hosting)"
    page = html_of(dpo, "purpose:essential.service.notifications.email", 1).decode()
    assert "standard contractual clauses" in page
    assert "Art 46(2)(c) GDPR" in page


def test_a_notice_gives_the_source_of_observed_and_inferred_data(dpo):
    bookkeeping = generate(dpo, "purpose:bookkeeping")["content"]["purposes"][0]
    marketing = generate(dpo, "purpose:marketing.communications.email")["content"]

    sources = {i["name"]: i for i in bookkeeping["not_from_subject"]}
    assert set(sources) == {"Invoice amount in euro cents", "Invoice date"}
    assert sources["Invoice date"]["source"] == "recorded from your use of Billing"
    [inferred] = marketing["purposes"][0]["not_from_subject"]
    assert inferred["origin"] == "inferred"
    assert "Marketing platform" in inferred["source"]
    [decision] = marketing["purposes"][0]["automated_decisions"]
    assert "interest segment" in decision["logic"]
    assert {"Art 7(3)", "Art 22"} <= {r["article"] for r in marketing["rights"]}


def test_a_system_notice_covers_each_purpose_of_its_fields(dpo):
    notice = generate(dpo, "system:crm")

    content = notice["content"]
    assert content["about"] == {
        "kind": "system",
        "key": "crm",
        "name": "Customer relationship management",
    }
    keys = [p["key"] for p in content["purposes"]]
    assert keys == [
        "customer_service",
        "essential.fraud_detection",
        "essential.service.notifications.email",
    ]
    service = by_key(content["purposes"], "customer_service")
    assert {b["article"] for b in service["legal_bases"]} == {
        "Art 6(1)(b)",
        "Art 6(1)(f)",
    }
    assert service["legitimate_interest"].startswith("Delivering orders")
    assert "Art 21" in {r["article"] for r in content["rights"]}
    assert {r["name"] for r in service["recipients"]} == {
        "ParcelNet B.V. (delivery)",
        "Postbird transactional e-mail",
    }
    # The Fides use relies on Art 6(1)(f) and the registry states no interest for it.
    assert notice["findings"] == [
        {
            "code": "legitimate-interest-missing",
            "article": "Art 13(1)(d)",
            "purpose": "essential.fraud_detection",
            "message": "The purpose 'essential.fraud_detection' relies on Art 6(1)(f) "
            "but the registry states no legitimate interest.",
        }
    ]
    assert (
        "Our legitimate interest: Delivering orders"
        in html_of(dpo, "system:crm", 1).decode()
    )


def test_the_notice_says_how_to_exercise_the_rights_through_this_service(
    dpo, make_endpoint, review_process
):
    make_endpoint(
        "dsr", "opendsr", request_processes={"access": "data_subject_request"}
    )

    exercise = generate(dpo, "purpose:bookkeeping")["content"]["exercise"]

    assert exercise["opendsr_urls"] == ["http://127.0.0.1:5000/webhooks/dsr"]
    assert exercise["channels"][0] == "by e-mail to privacy@example.org"
    assert "Art 12(3)" in exercise["answer_within"]
    page = html_of(dpo, "purpose:bookkeeping", 1).decode()
    assert "http://127.0.0.1:5000/webhooks/dsr" in page


def test_generating_unchanged_content_keeps_version_one(app, dpo, frozen_clock):
    first = generate(dpo, "purpose:bookkeeping")
    frozen_clock.advance(days=3)

    again = generate(dpo, "purpose:bookkeeping", status=200)

    assert (again["id"], again["version"]) == (first["id"], 1)
    assert again["content_sha256"] == first["content_sha256"]
    assert [v["version"] for v in versions(dpo, "purpose:bookkeeping")] == [1]


def versions(caller, scope: str) -> list[dict[str, Any]]:
    reply = caller.get(f"{API}/{scope}/versions")
    assert reply.status_code == 200
    return reply.get_json()["items"]


def test_a_new_recipient_makes_version_two_and_version_one_stays_readable(
    client, dpo, frozen_clock
):
    generate(dpo, "purpose:customer_service")
    before = html_of(dpo, "purpose:customer_service", 1)
    frozen_clock.advance(days=10)
    put_field(
        dpo,
        "crm.customers.phone",
        recipients=[{"name": "CallCentre Oy", "country": "FI"}],
    )

    second = generate(dpo, "purpose:customer_service")

    assert second["version"] == 2
    names = {r["name"] for r in second["content"]["purposes"][0]["recipients"]}
    assert "CallCentre Oy" in names
    assert html_of(dpo, "purpose:customer_service", 1) == before
    assert b"CallCentre Oy" not in before
    assert b"CallCentre Oy" in html_of(dpo, "purpose:customer_service", 2)
    assert client.get("/privacy/purpose:customer_service/1").get_data() == before
    listed = dpo.get(API).get_json()["items"]
    assert [(n["scope"], n["version"]) for n in listed] == [
        ("purpose:customer_service", 2)
    ]


def test_a_changed_catalogue_file_makes_a_new_version(app, dpo):
    generate(dpo, "purpose:bookkeeping")
    before = html_of(dpo, "purpose:bookkeeping", 1)
    changed = catalogue.DEMO.read_text().replace(
        "Keeping the accounts that tax law requires.",
        "Keeping the accounts that Dutch tax law requires.",
    )
    with app.app_context():
        catalogue.load_catalogue(changed)
        db.session.commit()

    second = generate(dpo, "purpose:bookkeeping")

    assert second["version"] == 2
    assert "Dutch tax law" in second["content"]["purposes"][0]["description"]
    first = dpo.get(f"{API}/purpose:bookkeeping/versions/1").get_json()
    assert "Dutch" not in first["content"]["purposes"][0]["description"]
    assert html_of(dpo, "purpose:bookkeeping", 1) == before


def test_a_generation_that_loses_the_race_for_its_number_is_a_409(dpo, monkeypatch):
    generate(dpo, "purpose:bookkeeping")
    # As if another request stored version 1 after this one looked for the latest.
    monkeypatch.setattr(privacy_notices, "latest_version", lambda scope: None)

    reply = dpo.post(f"{API}/generate", json={"scope": "purpose:bookkeeping"})

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "privacy-notice-generated-meanwhile"
    monkeypatch.undo()
    assert [v["version"] for v in versions(dpo, "purpose:bookkeeping")] == [1]


def test_the_html_escapes_markup_from_the_registry_and_allows_no_script(dpo):
    created = dpo.post(
        "/api/v1/registry/purposes",
        json={
            "key": "web_shop",
            "name": "Web shop",
            "description": "<script>alert(1)</script> Orders placed online.",
            "legal_basis": "contract",
            "legitimate_interest": "Keeping <b>order</b> history.",
        },
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["legitimate_interest"] == "Keeping <b>order</b> history."
    generate(dpo, "purpose:web_shop")

    reply = dpo.get(f"{API}/purpose:web_shop/versions/1/html")

    page = reply.get_data(as_text=True)
    assert reply.mimetype == "text/html"
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Orders placed online." in page
    policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy


def test_a_version_is_a_pdf(dpo):
    generate(dpo, "system:billing")

    reply = dpo.get(f"{API}/system:billing/versions/1/pdf")

    assert reply.status_code == 200
    assert reply.mimetype == "application/pdf"
    assert reply.get_data().startswith(b"%PDF")


def test_the_public_page_shows_a_version_without_a_token(client, dpo):
    generate(dpo, "purpose:leave_management")

    page = client.get("/privacy/purpose:leave_management/1")
    missing = client.get("/privacy/purpose:leave_management/2")

    assert page.status_code == 200
    assert page.mimetype == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert b"Privacy notice: Leave management" in page.get_data()
    assert b"Version 1" in page.get_data()
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("payroll_tax", "scope-invalid"),
        ("team:payroll_tax", "scope-invalid"),
        ("purpose:", "scope-invalid"),
        ("purpose:no_such_purpose", "scope-unknown"),
        ("system:no_such_system", "scope-unknown"),
    ],
)
def test_a_scope_that_is_not_in_the_registry_is_refused(app, dpo, scope, code):
    reply = dpo.post(f"{API}/generate", json={"scope": scope})

    problem = reply.get_json()
    assert reply.status_code == 422
    assert problem["code"] == code
    assert problem["errors"][0]["field"] == "scope"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(PrivacyNotice.id))) == 0


def test_a_consent_notice_linked_to_version_one_shows_it_in_demonstrate(dpo, officer):
    version = generate(dpo, "purpose:marketing.communications.email")
    published = dpo.post(
        "/api/v1/consent/notices",
        json={
            "purpose": "marketing.communications.email",
            "text": "Yes, send me the monthly newsletter.",
            "language": "en",
            "material": False,
            "privacy_notice_version_id": version["id"],
        },
    )
    assert published.status_code == 201, published.get_json()
    assert published.get_json()["privacy_notice_version_id"] == version["id"]
    granted = officer.post(
        "/api/v1/consents",
        json={
            "identities": {"email": "jane@example.org"},
            "purpose": "marketing.communications.email",
            "channel": "web",
            "mechanism": "newsletter checkbox",
        },
    )
    assert granted.status_code == 201, granted.get_json()

    shown = dpo.get(
        "/api/v1/consents/demonstrate?identity_type=email&identity_value=jane@example.org"
    ).get_json()
    as_csv = dpo.get(
        "/api/v1/consents/demonstrate?identity_type=email"
        "&identity_value=jane@example.org&format=csv"
    ).get_data(as_text=True)

    [event] = shown["consents"][0]["events"]
    assert event["privacy_notice_scope"] == "purpose:marketing.communications.email"
    assert event["privacy_notice_version"] == 1
    assert event["privacy_notice_sha256"] == version["content_sha256"]
    assert version["content_sha256"] in as_csv


def test_a_consent_notice_naming_no_privacy_notice_version_is_refused(dpo):
    reply = dpo.post(
        "/api/v1/consent/notices",
        json={
            "purpose": "marketing.communications.email",
            "text": "Yes, send me the newsletter.",
            "language": "en",
            "material": False,
            "privacy_notice_version_id": 999,
        },
    )

    assert reply.status_code == 422
    assert reply.get_json()["errors"] == [
        {"field": "privacy_notice_version_id", "message": "is no version"}
    ]
    assert dpo.get("/api/v1/consent/notices").get_json()["items"] == []


@pytest.mark.parametrize(
    ("role", "method", "url", "status"),
    [
        ("privacy_officer", "post", f"{API}/generate", 403),
        ("process_designer", "get", API, 403),
        ("manager", "get", f"{API}/purpose:bookkeeping/versions", 403),
        ("privacy_officer", "get", API, 200),
        ("admin", "post", f"{API}/generate", 201),
    ],
)
def test_who_may_generate_and_read_notices(make_user, role, method, url, status):
    caller = make_user("someone", role)

    reply = getattr(caller, method)(url, json={"scope": "purpose:bookkeeping"})

    assert reply.status_code == status


def test_the_api_needs_a_token(client):
    assert client.get(API).status_code == 401
    assert client.post(f"{API}/generate", json={}).status_code == 401
