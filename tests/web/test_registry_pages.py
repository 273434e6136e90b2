"""Registry pages: the catalogue, where a field is used, a subject lookup by purpose."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.models import AuditEvent, System
from app.registry import sample_data
from app.services import registry, subjects
from app.services.connectors import locate
from tests.conftest import DATA

EMPLOYEES = sample_data.rows()[sample_data.hr_employees]
SHARED = EMPLOYEES[-1]
PAYROLL_BPMN = (DATA / "payroll_tax_return.bpmn").read_bytes()
HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
BSN_NAME = "Citizen service number (BSN)"


def bound_form(*field_ids: str) -> bytes:
    properties = {
        field_id.rsplit(".", 1)[1]: {"type": "string", "x-registry-field": field_id}
        for field_id in field_ids
    }
    return json.dumps({"type": "object", "properties": properties}).encode()


def lookup(web, purpose: str, identifier: str = SHARED["email"], kind: str = "email"):
    data = {"kind": kind, "identifier": identifier, "purpose": purpose}
    return web.post("/registry/subjects", data)


def audit_events(app, action: str) -> list[AuditEvent]:
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.action == action)
        return list(db.session.scalars(query.order_by(AuditEvent.id)))


@pytest.fixture
def officer_web(sign_in_as):
    return sign_in_as("petra", "privacy_officer")


# --- who may open the pages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "catalogue", "lookup_form"),
    [
        ("dpo", 200, 200),
        ("privacy_officer", 200, 200),
        ("admin", 200, 403),
        ("process_designer", 200, 403),
        ("manager", 403, 403),
    ],
)
def test_the_pages_open_for_the_roles_the_api_allows(
    sign_in_as, demo_catalogue, role, catalogue, lookup_form
):
    web = sign_in_as("someone", role)

    assert web.get("/registry").status_code == catalogue
    assert web.get("/registry/fields/hr.employees.bsn").status_code == catalogue
    assert web.get("/registry/subjects").status_code == lookup_form


def test_a_manager_cannot_look_a_subject_up_and_the_refusal_is_audited(
    app, sign_in_as, systems
):
    web = sign_in_as("max", "manager")

    reply = lookup(web, "employment")

    assert reply.status_code == 403
    assert SHARED["email"] not in reply.get_data(as_text=True)
    assert audit_events(app, "registry.subject_looked_up") == []
    assert audit_events(app, "access.denied")


def test_signed_out_visitors_are_sent_to_sign_in(client, demo_catalogue):
    reply = client.get("/registry")

    assert reply.status_code == 302
    assert "/sign-in" in reply.headers["Location"]


# --- the catalogue ------------------------------------------------------------------


def test_the_catalogue_lists_each_field_with_category_purposes_and_basis(
    officer_web, demo_catalogue
):
    page = officer_web.page("/registry")

    assert "HR system · Employees" in page
    assert BSN_NAME in page
    assert "user.government_id.national_identification_number" in page
    assert "Payroll tax" in page
    assert "Art 6(1)(c)" in page
    # The medical note is special-category data under Art 9(2)(b).
    assert "Art 9(2)(b)" in page and "Special category" in page
    assert "P7Y" not in page and "7 years after end of employment" in page
    assert "Belastingdienst (Dutch tax authority)" in page


def test_the_catalogue_shows_owner_location_and_processor_status(
    officer_web, demo_catalogue
):
    page = officer_web.page("/registry")

    assert "Head of HR" in page
    assert "Ashburn, Virginia (US)" in page
    assert "<td>signed, signed 14 Mar 2025</td>" in page
    # The CRM's e-mail goes to the US mailer: marked as a transfer.
    assert "outside the EEA" in page


def test_the_catalogue_keeps_systems_and_fields_in_order(officer_web, demo_catalogue):
    page = officer_web.page("/registry")

    headings = ["Billing · Invoices", "Customer relationship management · Customers"]
    positions = [page.index(heading) for heading in headings]
    assert positions == sorted(positions)
    assert page.index(BSN_NAME) < page.index("Work e-mail address")


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("system=crm", ["Telephone number", "Postal address"], [BSN_NAME]),
        ("purpose=payroll_tax", [BSN_NAME, "Employee number"], ["Telephone number"]),
        ("category=user.contact", ["Telephone number", "Postal address"], [BSN_NAME]),
        ("special=1", ["Medical note on file"], [BSN_NAME, "Telephone number"]),
        ("system=hr&special=1", ["Medical note on file"], ["Full name"]),
    ],
)
def test_filters_narrow_the_catalogue(
    officer_web, demo_catalogue, query, shown, hidden
):
    page = officer_web.page(f"/registry?{query}")

    for name in shown:
        assert name in page
    for name in hidden:
        assert name not in page
    assert "Clear filters" in page


def test_a_filter_matching_nothing_says_so(officer_web, demo_catalogue):
    page = officer_web.page("/registry?system=nothing-here")

    assert "No field matches these filters." in page


def test_the_filters_remember_the_choice(officer_web, demo_catalogue):
    page = officer_web.page("/registry?purpose=sick_leave&special=1")

    assert '<option value="sick_leave" selected>' in page
    assert 'name="special" value="1" checked' in page


def test_hostile_registry_text_is_escaped(app, officer_web, demo_catalogue):
    with app.app_context():
        hr = db.session.scalar(select(System).where(System.key == "hr"))
        hr.description = HOSTILE
        registry.get_field("hr.employees.bsn").name = HOSTILE
        db.session.commit()

    for path in ("/registry", "/registry/fields/hr.employees.bsn"):
        page = officer_web.page(path)
        assert HOSTILE not in page
        assert ESCAPED in page


# --- where a field is used ----------------------------------------------------------


def test_where_used_shows_the_forms_and_tasks_binding_a_field(
    deploy, officer_web, demo_catalogue
):
    form = bound_form("hr.employees.name", "hr.employees.bsn")
    reply = deploy(PAYROLL_BPMN, "payroll_tax_return.bpmn", {"payroll_check": form})
    assert reply.status_code == 201

    page = officer_web.page("/registry/fields/hr.employees.bsn")

    assert "<h1>" + BSN_NAME + "</h1>" in page
    assert "payroll_check" in page
    assert "payroll_tax_return" in page and "Check the wage-tax return" in page
    assert "not a purpose of this field" not in page
    assert "Belastingdienst (Dutch tax authority)" in page


def test_where_used_of_an_unbound_field_says_nothing_binds_it(
    officer_web, demo_catalogue
):
    page = officer_web.page("/registry/fields/crm.customers.email")

    assert "No deployed form binds this field." in page
    assert "No deployed process shows this field in a task." in page
    assert "Postbird transactional e-mail" in page and "outside the EEA" in page


def test_an_unknown_field_is_a_plain_404_page(officer_web, demo_catalogue):
    reply = officer_web.get("/registry/fields/hr.employees.shoe_size")

    assert reply.status_code == 404
    assert "No field &#39;hr.employees.shoe_size&#39; in the registry." in (
        reply.get_data(as_text=True)
    )


# --- a subject lookup for one purpose -----------------------------------------------


def test_the_lookup_form_offers_the_purposes_fields_serve(officer_web, demo_catalogue):
    page = officer_web.page("/registry/subjects")

    assert '<label for="lookup-identifier">' in page
    assert 'value="payroll_tax"' in page and "Payroll tax" in page
    assert 'value="leave_management"' in page
    assert 'name="csrf_token"' in page


def test_an_hr_lookup_shows_only_the_purposes_fields_and_never_the_bsn(
    officer_web, systems
):
    reply = lookup(officer_web, "leave_management")

    page = reply.get_data(as_text=True)
    assert reply.status_code == 200
    assert "HR system · Employees" in page
    assert SHARED["name"] in page
    assert str(SHARED["leave_balance"]) in page
    assert SHARED["bsn"] not in page and BSN_NAME not in page
    # Leave management may not use the work e-mail address either.
    assert "Work e-mail address" not in page
    assert "none of their 3 fields serves Leave management" in page
    assert "3 other fields of this entity serve other purposes" in page


def test_the_payroll_tax_purpose_may_see_the_bsn(officer_web, systems):
    page = lookup(officer_web, "payroll_tax").get_data(as_text=True)

    assert BSN_NAME in page and SHARED["bsn"] in page
    assert "Leave balance" not in page


def test_a_subject_is_found_by_employee_number(officer_web, systems):
    number = SHARED["employee_number"]

    page = lookup(officer_web, "payroll_tax", number, "unique_id").get_data(
        as_text=True
    )

    assert "Found in 1 system," in page
    assert SHARED["bsn"] in page


def test_an_unknown_subject_shows_a_plain_not_found_message(app, officer_web, systems):
    reply = lookup(officer_web, "employment", "nobody@example.org")

    page = reply.get_data(as_text=True)
    assert reply.status_code == 404
    assert "No connected system holds anyone with that identifier." in page
    assert 'value="nobody@example.org"' in page
    assert audit_events(app, "registry.subject_looked_up") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"identifier": ""}, "Enter the identifier"),
        ({"identifier": "x" * 321}, "at most 320 characters"),
        ({"purpose": ""}, "Choose the purpose this lookup is for."),
        ({"purpose": "spying"}, "Choose the purpose this lookup is for."),
        ({"kind": "name"}, "Choose the kind of identifier"),
    ],
)
def test_a_bad_lookup_says_what_is_missing_and_records_nothing(
    app, officer_web, systems, data, message
):
    form = {"kind": "email", "identifier": SHARED["email"], "purpose": "employment"}

    reply = officer_web.post("/registry/subjects", {**form, **data})

    assert reply.status_code == 422
    assert message in reply.get_data(as_text=True)
    assert audit_events(app, "registry.subject_looked_up") == []


def test_an_identifier_kind_no_system_is_searched_by_keeps_the_form(
    app, officer_web, systems
):
    with app.app_context():
        for system in ("crm", "hr"):
            db.session.delete(registry.get_system(system))
        db.session.commit()

    reply = lookup(officer_web, "bookkeeping", "+31 6 0000 0001", "phone")

    page = reply.get_data(as_text=True)
    assert reply.status_code == 422
    assert "No connected entity is searched by phone" in page
    assert 'value="+31 6 0000 0001"' in page
    assert audit_events(app, "registry.subject_looked_up") == []


def test_a_lookup_without_the_csrf_token_is_refused(app, officer_web, systems):
    reply = officer_web.client.post(
        "/registry/subjects",
        data={"kind": "email", "identifier": SHARED["email"], "purpose": "employment"},
    )

    assert reply.status_code == 400
    assert audit_events(app, "registry.subject_looked_up") == []


def test_the_audit_trail_has_the_lookup_and_its_purpose_not_the_identifier(
    app, officer_web, systems
):
    lookup(officer_web, "payroll_tax")

    [event] = audit_events(app, "registry.subject_looked_up")
    assert event.actor_id == officer_web.user_id
    assert event.details["purpose"] == "payroll_tax"
    assert event.details["identity_keys"] == ["email"]
    assert "hr.employees.bsn" in event.details["fields"]
    assert "hr.employees.leave_balance" not in event.details["fields"]
    assert SHARED["email"] not in json.dumps(event.details)
    assert SHARED["bsn"] not in json.dumps(event.details)


def test_a_restricted_value_is_withheld_and_marked(app, officer_web, officer, systems):
    reply = officer.post(
        "/api/v1/registry/subjects/restrict",
        json={
            "identities": {"email": SHARED["email"]},
            "fields": ["hr.employees.name"],
            "ground": "art_18_1_a",
        },
    )
    assert reply.status_code == 200

    page = lookup(officer_web, "leave_management").get_data(as_text=True)

    assert "Restricted (Art 18(1)(a))" in page
    assert SHARED["name"] not in page
    assert str(SHARED["leave_balance"]) in page


def test_hostile_subject_data_is_escaped(officer_web, systems):
    engine = create_engine(f"sqlite:///{systems}")
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE hr_employees SET name = :name WHERE email = :email"),
            {"name": HOSTILE, "email": SHARED["email"]},
        )
    engine.dispose()

    page = lookup(officer_web, "employment").get_data(as_text=True)

    assert HOSTILE not in page
    assert ESCAPED in page


# --- the services behind the lookup -------------------------------------------------


def test_a_purpose_reads_only_the_fields_it_may_use(app, systems):
    with app.app_context():
        subject = locate({"email": SHARED["email"]})

        ids = subjects.purpose_field_ids(subject, "payroll_tax")
        copy = subjects.read_for_purpose(subject, "payroll_tax")

    assert ids == [
        "hr.employees.bsn",
        "hr.employees.employee_number",
        "hr.employees.name",
    ]
    assert copy.field_ids == ids
    assert list(copy.systems) == ["hr"]


def test_the_registry_names_purposes_and_categories(app, demo_catalogue):
    with app.app_context():
        in_use = registry.purposes_in_use()
        names = registry.purpose_names(["payroll_tax", "employment", "unknown"])
        categories = registry.category_names(["user.contact.email", "own.thing"])

    assert "payroll_tax" in in_use and "marketing.communications.email" in in_use
    assert in_use == sorted(in_use)
    assert names["payroll_tax"] == "Payroll tax"
    assert names["unknown"] == "unknown"
    assert names["employment"] != "employment"
    assert categories["own.thing"] == "own.thing"
    assert categories["user.contact.email"] != "user.contact.email"
