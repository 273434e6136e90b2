"""The registry API: who may read and change it, refusals, where used, design time."""

from __future__ import annotations

import json

import pytest
import yaml
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.models import AuditEvent
from app.services import catalogue
from tests.conftest import DATA, ROOT

API = "/api/v1/registry"
DEMO_TEXT = catalogue.DEMO.read_text()
LEAVE_BPMN = (DATA / "leave_assessment.bpmn").read_bytes()
PAYROLL_BPMN = (DATA / "payroll_tax_return.bpmn").read_bytes()
YAML = "application/yaml"


def bound_form(*field_ids: str) -> bytes:
    """A task form with one string property bound to each registry field."""
    properties = {
        field_id.rsplit(".", 1)[1]: {"type": "string", "x-registry-field": field_id}
        for field_id in field_ids
    }
    properties["decision"] = {"type": "string", "enum": ["approve", "refuse"]}
    return json.dumps({"type": "object", "properties": properties}).encode()


PHONE = {
    "id": "crm.customers.mobile",
    "name": "Mobile number",
    "data_category": "user.contact.phone_number",
    "purposes": ["customer_service"],
    "origin": "provided",
    "retention": {"period": "P2Y", "anchor": "end_of_contract"},
}
SYSTEM = {
    "key": "payroll",
    "name": "Payroll service",
    "owner": "Paylane B.V.",
    "location": "Utrecht",
    "country": "NL",
    "role": "processor",
    "processor_agreement": {"status": "signed", "signed_on": "2025-01-06"},
    "entities": [
        {
            "key": "payslips",
            "name": "Payslips",
            "subject_category": "employee",
            "subject_key": "employee_number",
        }
    ],
}

READ = [
    ("get", f"{API}/systems"),
    ("get", f"{API}/systems/hr"),
    ("get", f"{API}/fields"),
    ("get", f"{API}/fields/hr.employees.bsn"),
    ("get", f"{API}/fields/hr.employees.bsn/where-used"),
    ("get", f"{API}/purposes"),
    ("get", f"{API}/categories"),
    ("get", f"{API}/taxonomy"),
    ("get", f"{API}/catalogue"),
]
WRITE = [
    ("post", f"{API}/systems", {"json": SYSTEM}, 201),
    ("put", f"{API}/systems/payroll", {"json": SYSTEM}, 200),
    ("delete", f"{API}/systems/marketing", {}, 204),
    ("post", f"{API}/fields", {"json": PHONE}, 201),
    ("put", f"{API}/fields/crm.customers.phone", {"json": PHONE}, 200),
    ("delete", f"{API}/fields/crm.customers.phone", {}, 204),
    ("post", f"{API}/purposes", {"json": {"key": "audits", "name": "Audits"}}, 201),
    (
        "post",
        f"{API}/categories",
        {"json": {"key": "user.badge", "name": "Badge"}},
        201,
    ),
    (
        "post",
        f"{API}/catalogue",
        {"data": DEMO_TEXT, "content_type": YAML},
        200,
    ),
]
ROLES = ("dpo", "privacy_officer", "admin", "process_designer")
WRITERS = ("dpo", "admin")


def _body(entry):
    method, url, kwargs, _ = entry
    if method == "put" and url.endswith("/payroll"):
        kwargs = {"json": {k: v for k, v in SYSTEM.items() if k != "key"}}
    if method == "put" and "/fields/" in url:
        kwargs = {"json": {k: v for k, v in PHONE.items() if k != "id"}}
    return kwargs


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url"), READ)
def test_every_role_may_read_the_registry(make_user, demo_catalogue, role, method, url):
    caller = make_user("someone", role)

    reply = getattr(caller, method)(url)

    assert reply.status_code == 200, reply.get_json()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("entry", WRITE, ids=[f"{e[0]} {e[1]}" for e in WRITE])
def test_only_the_dpo_and_admins_may_change_it(make_user, demo_catalogue, role, entry):
    caller = make_user("someone", role)
    if entry[1].endswith("/payroll"):
        make_user("setup", "admin").post(f"{API}/systems", json=SYSTEM)

    reply = getattr(caller, entry[0])(entry[1], **_body(entry))

    expected = entry[3] if role in WRITERS else 403
    assert reply.status_code == expected, reply.get_json()


def test_a_refused_change_is_audited(officer, demo_catalogue, app):
    officer.delete(f"{API}/fields/hr.employees.bsn")

    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "access.denied")
        ).one()
    assert event.details["path"] == f"{API}/fields/hr.employees.bsn"


def test_the_registry_needs_a_token(client):
    assert client.get(f"{API}/systems").status_code == 401


def test_a_system_is_created_read_replaced_and_deleted(dpo):
    created = dpo.post(f"{API}/systems", json=SYSTEM)
    assert created.status_code == 201
    assert created.get_json()["entities"][0]["key"] == "payslips"
    assert created.get_json()["processor_agreement"]["signed_on"] == "2025-01-06"

    body = {k: v for k, v in SYSTEM.items() if k != "key"}
    body["entities"] = []
    body["country"] = "BE"
    replaced = dpo.put(f"{API}/systems/payroll", json=body)

    assert replaced.status_code == 200
    assert replaced.get_json()["entities"] == []
    assert replaced.get_json()["country"] == "BE"
    assert dpo.delete(f"{API}/systems/payroll").status_code == 204
    assert dpo.get(f"{API}/systems/payroll").status_code == 404


def test_a_second_system_with_the_same_key_is_a_conflict(dpo):
    dpo.post(f"{API}/systems", json=SYSTEM)

    assert dpo.post(f"{API}/systems", json=SYSTEM).status_code == 409


def test_an_entity_that_still_has_fields_cannot_be_dropped(dpo, demo_catalogue):
    system = dpo.get(f"{API}/systems/hr").get_json()
    body = {
        name: system[name] for name in ("name", "owner", "location", "country", "role")
    }
    body["entities"] = []

    reply = dpo.put(f"{API}/systems/hr", json=body)

    assert reply.status_code == 409
    assert "employees" in reply.get_json()["detail"]


def test_a_system_named_as_a_recipient_cannot_be_deleted(dpo, demo_catalogue):
    reply = dpo.delete(f"{API}/systems/mailer")

    assert reply.status_code == 409
    assert "crm.customers.email" in reply.get_json()["detail"]


def test_a_recipient_system_cannot_become_internal(dpo, demo_catalogue):
    system = dpo.get(f"{API}/systems/mailer").get_json()
    body = {name: system[name] for name in ("name", "owner", "location", "country")}

    reply = dpo.put(f"{API}/systems/mailer", json={**body, "role": "internal"})

    assert reply.status_code == 409
    assert "crm.customers.email" in reply.get_json()["detail"]


def test_a_field_is_created_with_its_defaults_filled_in(dpo, demo_catalogue, app):
    reply = dpo.post(f"{API}/fields", json=PHONE)

    assert reply.status_code == 201
    body = reply.get_json()
    assert body["id"] == "crm.customers.mobile"
    assert body["legal_basis"] == "contract"  # customer_service's default
    assert body["legal_basis_article"] == "Art 6(1)(b)"
    assert body["special_category"] is False
    assert body["portable"] is True
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "registry.field_created")
        ).one()
    assert event.details == {"field": "crm.customers.mobile"}


FIELD_REFUSALS = [
    ({"data_category": "user.contact.phone"}, "data_category", "phone_number"),
    ({"purposes": ["custommer_service"]}, "purposes.0", "customer_service"),
    ({"legal_basis": "vibes"}, "legal_basis", "Must be one of"),
    (
        {"data_category": "user.biometric.fingerprint"},
        "art9_condition",
        "Art 9(2)",
    ),
    ({"recipients": [{"system": "mailerr"}]}, "recipients.0.system", "mailer"),
    ({"recipients": [{"name": "Acme"}]}, "recipients.0.country", "country"),
    ({"origin": "guessed"}, "origin", "provided"),
    ({"id": "crm.clients.mobile"}, "id", "crm.clients"),
]


@pytest.mark.parametrize(("change", "field", "words"), FIELD_REFUSALS)
def test_a_bad_field_is_a_422_naming_it_and_nothing_is_stored(
    dpo, demo_catalogue, change, field, words
):
    reply = dpo.post(f"{API}/fields", json={**PHONE, **change})

    assert reply.status_code == 422
    assert reply.mimetype == "application/problem+json"
    errors = {e["field"]: e["message"] for e in reply.get_json()["errors"]}
    assert field in errors, errors
    assert words in errors[field]
    assert dpo.get(f"{API}/fields/crm.customers.mobile").status_code == 404


def test_a_field_is_replaced_and_deleted(dpo, demo_catalogue):
    body = {k: v for k, v in PHONE.items() if k != "id"}
    body["purposes"] = ["customer_service", "essential.service.notifications.sms"]
    body["legal_basis"] = "contract"  # a Fides use brings no default

    replaced = dpo.put(f"{API}/fields/crm.customers.phone", json=body)

    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.get_json()["name"] == "Mobile number"
    assert dpo.delete(f"{API}/fields/crm.customers.phone").status_code == 204
    assert dpo.get(f"{API}/fields/crm.customers.phone").status_code == 404


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        (
            "system=billing",
            [
                "billing.invoices.amount",
                "billing.invoices.customer_email",
                "billing.invoices.invoice_date",
            ],
        ),
        ("special=true", ["hr.employees.medical_note"]),
        (
            "category=user.contact",
            [
                "billing.invoices.customer_email",
                "crm.customers.address",
                "crm.customers.email",
                "crm.customers.phone",
                "hr.employees.email",
                "marketing.segments.customer_email",
            ],
        ),
        (
            "purpose=payroll_tax",
            ["hr.employees.bsn", "hr.employees.employee_number", "hr.employees.name"],
        ),
        (
            "system=hr&purpose=leave_management",
            [
                "hr.employees.employee_number",
                "hr.employees.leave_balance",
                "hr.employees.name",
            ],
        ),
    ],
)
def test_fields_are_listed_by_filter(officer, demo_catalogue, query, ids):
    reply = officer.get(f"{API}/fields?{query}")

    assert [item["id"] for item in reply.get_json()["items"]] == ids


def test_an_organisation_purpose_is_added_but_not_over_a_fides_use(dpo):
    added = dpo.post(f"{API}/purposes", json={"key": "audits", "name": "Audits"})
    taken = dpo.post(f"{API}/purposes", json={"key": "marketing", "name": "Ours"})

    assert added.status_code == 201
    assert taken.status_code == 422
    assert "Fides" in taken.get_json()["detail"]
    keys = [p["key"] for p in dpo.get(f"{API}/purposes").get_json()["items"]]
    assert keys == ["audits"]


UNION = {
    "key": "user.trade_union_membership",
    "name": "Trade-union membership",
    "special_category": True,
    "art9_basis_note": "Art 9(1): trade-union membership.",
    "parent": "user",
}


def test_an_organisation_category_is_added_but_not_over_a_fides_key(dpo, app):
    added = dpo.post(f"{API}/categories", json=UNION)
    again = dpo.post(f"{API}/categories", json=UNION)
    taken = dpo.post(f"{API}/categories", json={"key": "user.name", "name": "Ours"})

    assert added.status_code == 201, added.get_json()
    assert added.get_json()["special_category"] is True
    assert again.status_code == 409
    assert taken.status_code == 422
    assert "'user.name'" in taken.get_json()["detail"]
    assert taken.get_json()["errors"][0]["field"] == "key"
    items = dpo.get(f"{API}/categories").get_json()["items"]
    assert [c["key"] for c in items] == [UNION["key"]]
    with app.app_context():
        event = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "registry.category_created")
        ).one()
    assert event.details["category"] == UNION["key"]


def test_a_field_in_an_organisation_special_category_needs_art9(dpo, demo_catalogue):
    dpo.post(f"{API}/categories", json=UNION)
    body = {**PHONE, "id": "crm.customers.union", "data_category": UNION["key"]}

    refused = dpo.post(f"{API}/fields", json=body)
    created = dpo.post(
        f"{API}/fields", json={**body, "art9_condition": "explicit_consent"}
    )

    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["field"] == "art9_condition"
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["special_category"] is True


def test_the_taxonomy_lists_fides_and_the_organisation(officer, demo_catalogue):
    body = officer.get(f"{API}/taxonomy").get_json()

    purposes = {p["key"]: p for p in body["purposes"]}
    assert purposes["payroll_tax"]["source"] == "organisation"
    assert purposes["payroll_tax"]["legal_basis"] == "legal_obligation"
    assert purposes["essential.fraud_detection"]["source"] == "fides"
    categories = {c["key"]: c for c in body["data_categories"]}
    assert categories["user.health_and_medical"]["special_category"] is True
    assert categories["user.contact.email"]["special_category"] is False
    assert categories["user.contact.email"]["source"] == "fides"
    assert {"key": "contract", "article": "Art 6(1)(b)"} in body["legal_bases"]


def test_the_taxonomy_lists_organisation_categories(dpo):
    dpo.post(f"{API}/categories", json=UNION)

    body = dpo.get(f"{API}/taxonomy").get_json()

    categories = {c["key"]: c for c in body["data_categories"]}
    union = categories[UNION["key"]]
    assert union["source"] == "organisation"
    assert union["special_category"] is True
    assert union["parent"] == "user"


def test_a_catalogue_is_loaded_as_yaml_and_again_changes_nothing(dpo):
    first = dpo.post(f"{API}/catalogue", data=DEMO_TEXT, content_type=YAML)
    second = dpo.post(f"{API}/catalogue", data=DEMO_TEXT, content_type=YAML)

    assert first.status_code == 200
    assert first.get_json()["counts"]["fields"]["created"] == 14
    assert second.get_json()["counts"]["fields"]["unchanged"] == 14
    assert second.get_json()["changes"] == {
        "purposes": {},
        "categories": {},
        "systems": {},
        "entities": {},
        "fields": {},
    }


def test_the_catalogue_comes_back_out_as_yaml(app, officer, demo_catalogue):
    reply = officer.get(f"{API}/catalogue")

    assert reply.mimetype == YAML
    exported = yaml.safe_load(reply.get_data(as_text=True))
    with app.app_context():
        original = catalogue.validate(yaml.safe_load(DEMO_TEXT))
        assert catalogue.validate(exported) == original


def test_replace_from_the_api_removes_what_the_file_omits(dpo, demo_catalogue):
    document = yaml.safe_load(DEMO_TEXT)
    del document["systems"]["marketing"]

    reply = dpo.post(
        f"{API}/catalogue?replace=true",
        data=yaml.safe_dump(document),
        content_type=YAML,
    )

    assert reply.get_json()["changes"]["systems"] == {"removed": ["marketing"]}
    assert dpo.get(f"{API}/systems/marketing").status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("- a\n- b\n", YAML, 422, "catalogue-invalid"),
        (
            "systems: !!python/object/apply:os.system ['id']\n",
            YAML,
            400,
            "yaml-tag-refused",
        ),
        ("systems: [unclosed\n", YAML, 400, "malformed-yaml"),
        ("{}", "application/json", 415, "unsupported-media-type"),
    ],
)
def test_a_catalogue_that_cannot_be_read_is_refused(
    dpo, body, content_type, status, code
):
    reply = dpo.post(f"{API}/catalogue", data=body, content_type=content_type)

    assert reply.status_code == status
    assert reply.get_json()["code"] == code
    assert dpo.get(f"{API}/systems").get_json()["items"] == []


def test_a_broken_catalogue_names_the_yaml_path_and_loads_nothing(dpo):
    document = yaml.safe_load(DEMO_TEXT)
    fields = document["systems"]["hr"]["entities"]["employees"]["fields"]
    fields["bsn"]["legal_basis"] = "because"

    reply = dpo.post(
        f"{API}/catalogue", data=yaml.safe_dump(document), content_type=YAML
    )

    assert reply.status_code == 422
    errors = reply.get_json()["errors"]
    assert errors[0]["field"] == "systems.hr.entities.employees.fields.bsn.legal_basis"
    assert dpo.get(f"{API}/systems").get_json()["items"] == []


# --- forms and processes that bind registry fields ----------------------------------


def test_where_used_shows_the_forms_and_bpmn_tasks_of_a_field(
    deploy, officer, demo_catalogue
):
    form = bound_form("hr.employees.name", "hr.employees.bsn")
    assert (
        deploy(
            PAYROLL_BPMN, "payroll_tax_return.bpmn", {"payroll_check": form}
        ).status_code
        == 201
    )

    body = officer.get(f"{API}/fields/hr.employees.bsn/where-used").get_json()

    assert body["field"]["purposes"] == ["payroll_tax"]
    assert body["field"]["legal_basis"] == "legal_obligation"
    assert body["system"]["key"] == "hr"
    assert body["entity"]["key"] == "employees"
    assert body["recipients"] == [
        {
            "name": "Belastingdienst (Dutch tax authority)",
            "country": "NL",
            "third_country": False,
        }
    ]
    assert body["forms"] == [
        {
            "name": "payroll_check",
            "version_id": body["forms"][0]["version_id"],
            "properties": ["bsn"],
        }
    ]
    assert body["tasks"] == [
        {
            "process_id": "payroll_tax_return",
            "definition_version": 1,
            "bpmn_id": "check_return",
            "title": "Check the wage-tax return",
            "form": "payroll_check",
            "purpose": "payroll_tax",
            "purpose_allowed": True,
        }
    ]


def test_where_used_marks_a_processor_outside_the_eea(officer, demo_catalogue):
    body = officer.get(f"{API}/fields/crm.customers.email/where-used").get_json()

    assert body["recipients"] == [
        {
            "system": "mailer",
            "name": "Postbird transactional e-mail",
            "role": "processor",
            "country": "US",
            "agreement_status": "signed",
            "third_country": True,
        }
    ]
    assert body["forms"] == [] and body["tasks"] == []


def test_a_form_lists_the_registry_fields_it_binds(deploy, officer, demo_catalogue):
    form = bound_form("hr.employees.name", "hr.employees.leave_balance")
    deploy(LEAVE_BPMN, "leave_assessment.bpmn", {"leave_assessment": form})

    body = officer.get(f"{API}/forms/leave_assessment/fields").get_json()

    assert [(i["property"], i["field_id"], i["known"]) for i in body["items"]] == [
        ("leave_balance", "hr.employees.leave_balance", True),
        ("name", "hr.employees.name", True),
    ]
    assert body["items"][1]["field"]["purposes"][0] == "employment"
    assert officer.get(f"{API}/forms/nothing/fields").status_code == 404


def test_a_task_whose_form_binds_a_field_outside_its_purpose_is_not_deployed(
    deploy, designer, demo_catalogue
):
    form = bound_form("hr.employees.name", "hr.employees.bsn")

    reply = deploy(LEAVE_BPMN, "leave_assessment.bpmn", {"leave_assessment": form})

    assert reply.status_code == 422
    body = reply.get_json()
    assert body["code"] == "invalid-bpmn"
    [problem] = body["errors"]
    assert problem["element_id"] == "assess_leave"
    assert problem["field"] == "hr.employees.bsn"
    for named in (
        "assess_leave",
        "leave_management",
        "hr.employees.bsn",
        "payroll_tax",
    ):
        assert named in problem["message"]
    assert designer.get("/api/v1/definitions").get_json()["items"] == []
    assert designer.get("/api/v1/forms").get_json()["items"] == []


def test_the_same_task_deploys_when_its_form_binds_only_what_leave_may_see(
    deploy, demo_catalogue
):
    form = bound_form("hr.employees.name", "hr.employees.leave_balance")

    reply = deploy(LEAVE_BPMN, "leave_assessment.bpmn", {"leave_assessment": form})

    assert reply.status_code == 201, reply.get_json()


def test_an_already_deployed_form_is_checked_against_a_new_process(
    designer, deploy, demo_catalogue
):
    form = json.loads(bound_form("hr.employees.bsn"))
    stored = designer.post(
        "/api/v1/forms", json={"name": "leave_assessment", "schema": form}
    )
    assert stored.status_code == 201

    reply = deploy(LEAVE_BPMN, "leave_assessment.bpmn")

    assert reply.status_code == 422
    assert reply.get_json()["errors"][0]["field"] == "hr.employees.bsn"


def test_a_form_binding_an_unknown_field_is_not_deployed(designer, demo_catalogue):
    form = json.loads(bound_form("hr.employees.bsm"))

    reply = designer.post(
        "/api/v1/forms", json={"name": "payroll_check", "schema": form}
    )

    assert reply.status_code == 422
    [error] = reply.get_json()["errors"]
    assert error["field"] == "payroll_check.properties.bsm.x-registry-field"
    assert "hr.employees.bsn" in error["message"]


def test_a_bound_field_cannot_be_deleted(deploy, dpo, demo_catalogue):
    form = bound_form("hr.employees.name", "hr.employees.leave_balance")
    deploy(LEAVE_BPMN, "leave_assessment.bpmn", {"leave_assessment": form})

    reply = dpo.delete(f"{API}/fields/hr.employees.leave_balance")

    assert reply.status_code == 409
    assert "leave_assessment" in reply.get_json()["detail"]


def test_the_bundled_review_still_deploys_with_a_registry(deploy, demo_catalogue):
    review = (ROOT / "workflows" / "two_step_review.bpmn").read_bytes()
    forms = {
        name: (ROOT / "forms" / f"{name}.json").read_bytes()
        for name in ("review_prepare", "review_approve")
    }

    assert deploy(review, "two_step_review.bpmn", forms).status_code == 201


# --- a process and the personal fields it touches -----------------------------------


def _operator(bpmn_id: str, operator: str, following: str, **parameters: str) -> str:
    """A service task calling an operator, then the flow to the element following."""
    listed = "".join(
        f'<spiffworkflow:parameter id="{name}" type="any" value="{value}" />'
        for name, value in parameters.items()
    )
    return (
        f'<bpmn:serviceTask id="{bpmn_id}" name="{bpmn_id}"><bpmn:extensionElements>'
        f'<spiffworkflow:serviceTaskOperator id="{operator}" resultVariable="done">'
        f"<spiffworkflow:parameters>{listed}</spiffworkflow:parameters>"
        "</spiffworkflow:serviceTaskOperator></bpmn:extensionElements>"
        f"<bpmn:incoming>to_{bpmn_id}</bpmn:incoming>"
        f"<bpmn:outgoing>to_{following}</bpmn:outgoing></bpmn:serviceTask>"
        f'<bpmn:sequenceFlow id="to_{following}" sourceRef="{bpmn_id}" '
        f'targetRef="{following}" />'
    )


QUOTE = "&quot;"
# The leave assessment followed by a restriction of named fields, an export of
# everything, an erasure whose plan is a variable, and an operator of no registry.
OPERATORS = (
    '<bpmn:sequenceFlow id="to_restrict" sourceRef="assess_leave" '
    'targetRef="restrict" />'
    + _operator(
        "restrict",
        "registry.restrict",
        "export",
        identities="subject",
        ground=f"{QUOTE}art_18_1_a{QUOTE}",
        fields=f"[{QUOTE}hr.employees.leave_balance{QUOTE}]",
    )
    + _operator("export", "registry.export", "erase", identities="subject")
    + _operator(
        "erase", "registry.erase", "deadline", identities="subject", plan="plan"
    )
    + _operator("deadline", "deadlines.met", "end", name=f"{QUOTE}reply{QUOTE}")
)
LEAVE_THEN_OPERATORS = (
    LEAVE_BPMN.decode()
    .replace(
        "<bpmn:outgoing>f2</bpmn:outgoing>",
        "<bpmn:outgoing>to_restrict</bpmn:outgoing>",
    )
    .replace(
        "<bpmn:incoming>f2</bpmn:incoming>", "<bpmn:incoming>to_end</bpmn:incoming>"
    )
    .replace(
        '<bpmn:sequenceFlow id="f2" sourceRef="assess_leave" targetRef="end" />',
        OPERATORS,
    )
).encode()


def test_a_process_lists_the_fields_its_tasks_show_and_its_operators_reach(
    deploy, officer, demo_catalogue
):
    form = bound_form("hr.employees.name", "hr.employees.leave_balance")
    deployed = deploy(LEAVE_THEN_OPERATORS, "leave.bpmn", {"leave_assessment": form})
    assert deployed.status_code == 201, deployed.get_json()

    body = officer.get(f"{API}/processes/leave_assessment/fields").get_json()

    assert body["definition_version"] == 1
    [task] = body["user_tasks"]
    assert (task["bpmn_id"], task["form"], task["purpose"]) == (
        "assess_leave",
        "leave_assessment",
        "leave_management",
    )
    assert [
        (f["property"], f["field_id"], f["system"], f["purpose_allowed"])
        for f in task["fields"]
    ] == [
        ("leave_balance", "hr.employees.leave_balance", "hr", True),
        ("name", "hr.employees.name", "hr", True),
    ]
    assert task["fields"][0]["data_category"] == "user.job_title"
    reached = {t["bpmn_id"]: t for t in body["service_tasks"]}
    assert set(reached) == {"restrict", "export", "erase"}
    assert reached["restrict"]["reaches"] == "named_fields"
    assert [f["field_id"] for f in reached["restrict"]["fields"]] == [
        "hr.employees.leave_balance"
    ]
    assert reached["restrict"]["systems"] == ["hr"]
    assert reached["export"]["reaches"] == "every_field"
    assert reached["erase"]["reaches"] == "chosen_at_run_time"
    assert reached["erase"]["parameters"] == ["identities", "plan"]


def test_a_process_version_is_chosen_and_an_unknown_one_is_404(
    deploy, designer, demo_catalogue
):
    deploy(
        LEAVE_BPMN, "leave.bpmn", {"leave_assessment": bound_form("hr.employees.name")}
    )
    both = bound_form("hr.employees.name", "hr.employees.leave_balance")
    assert (
        deploy(LEAVE_BPMN, "leave.bpmn", {"leave_assessment": both}).status_code == 201
    )

    latest = designer.get(f"{API}/processes/leave_assessment/fields").get_json()
    first = designer.get(f"{API}/processes/leave_assessment/fields?version=1")
    missing = designer.get(f"{API}/processes/leave_assessment/fields?version=3")
    unknown = designer.get(f"{API}/processes/no_such_process/fields")

    assert latest["definition_version"] == 2
    assert len(latest["user_tasks"][0]["fields"]) == 2
    assert first.get_json()["definition_version"] == 1
    assert [f["field_id"] for f in first.get_json()["user_tasks"][0]["fields"]] == [
        "hr.employees.name"
    ]
    assert latest["service_tasks"] == []
    for reply in (missing, unknown):
        assert reply.status_code == 404
        assert reply.get_json()["code"] == "not-found"
    assert "version 3" in missing.get_json()["detail"]


# --- changing and removing the organisation's purposes and categories ---------------


def _events(app, action):
    with app.app_context():
        query = select(AuditEvent).where(AuditEvent.action == action)
        query = query.order_by(AuditEvent.id)
        return [event.details for event in db.session.scalars(query)]


def test_an_organisation_purpose_is_replaced_then_deleted_and_both_are_audited(
    dpo, app
):
    dpo.post(f"{API}/purposes", json={"key": "audits", "name": "Audits"})
    body = {"name": "Internal audits", "legal_basis": "legitimate_interests"}

    replaced = dpo.put(f"{API}/purposes/audits", json=body)
    deleted = dpo.delete(f"{API}/purposes/audits")

    assert replaced.status_code == 200, replaced.get_json()
    assert replaced.get_json()["name"] == "Internal audits"
    assert replaced.get_json()["legal_basis"] == "legitimate_interests"
    assert deleted.status_code == 204
    assert dpo.get(f"{API}/purposes").get_json()["items"] == []
    assert _events(app, "registry.purpose_updated") == [{"purpose": "audits"}]
    assert _events(app, "registry.purpose_deleted") == [{"purpose": "audits"}]
    assert dpo.delete(f"{API}/purposes/audits").status_code == 404


def test_a_purpose_fields_and_tasks_use_is_not_deleted_and_they_are_named(
    deploy, dpo, demo_catalogue, app
):
    form = bound_form("hr.employees.name", "hr.employees.leave_balance")
    deploy(LEAVE_BPMN, "leave_assessment.bpmn", {"leave_assessment": form})

    reply = dpo.delete(f"{API}/purposes/leave_management")

    assert reply.status_code == 409
    problem = reply.get_json()
    assert problem["code"] == "purpose-in-use"
    assert problem["used_by"]["tasks"] == ["leave_assessment.assess_leave"]
    assert "hr.employees.leave_balance" in problem["used_by"]["fields"]
    assert "hr.employees.leave_balance" in problem["detail"]
    keys = [p["key"] for p in dpo.get(f"{API}/purposes").get_json()["items"]]
    assert "leave_management" in keys
    assert _events(app, "registry.purpose_deleted") == []


def test_a_purpose_a_consent_notice_names_is_not_deleted(dpo, app):
    dpo.post(f"{API}/purposes", json={"key": "newsletter", "name": "Newsletter"})
    published = dpo.post(
        "/api/v1/consent/notices",
        json={
            "purpose": "newsletter",
            "text": "We send a monthly letter.",
            "material": False,
            "language": "en",
        },
    )
    assert published.status_code == 201, published.get_json()

    reply = dpo.delete(f"{API}/purposes/newsletter")

    assert reply.status_code == 409
    assert reply.get_json()["used_by"] == {"consent_notices": ["newsletter v1"]}
    assert _events(app, "registry.purpose_deleted") == []


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("put", f"{API}/purposes/marketing", {"name": "Ours"}),
        ("delete", f"{API}/purposes/marketing", None),
        ("put", f"{API}/categories/user.name", {"name": "Ours"}),
        ("delete", f"{API}/categories/user.name", None),
    ],
)
def test_a_fides_entry_is_neither_changed_nor_deleted(dpo, method, url, body):
    kwargs = {"json": body} if body else {}

    reply = getattr(dpo, method)(url, **kwargs)

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "fides-entry"
    assert "Fides" in reply.get_json()["detail"]


BADGE = {"key": "user.badge", "name": "Badge"}
BADGE_FIELD = {
    **PHONE,
    "id": "crm.customers.badge",
    "name": "Badge number",
    "data_category": "user.badge",
}


def test_a_category_a_field_uses_is_not_deleted_and_the_field_is_named(
    dpo, demo_catalogue
):
    dpo.post(f"{API}/categories", json=BADGE)
    assert dpo.post(f"{API}/fields", json=BADGE_FIELD).status_code == 201

    reply = dpo.delete(f"{API}/categories/user.badge")

    assert reply.status_code == 409
    assert reply.get_json()["code"] == "category-in-use"
    assert reply.get_json()["used_by"] == {"fields": ["crm.customers.badge"]}
    assert dpo.delete(f"{API}/fields/crm.customers.badge").status_code == 204
    assert dpo.delete(f"{API}/categories/user.badge").status_code == 204
    assert dpo.get(f"{API}/categories").get_json()["items"] == []


def test_a_category_is_not_made_special_over_fields_without_an_art9_condition(
    dpo, demo_catalogue
):
    dpo.post(f"{API}/categories", json=BADGE)
    dpo.post(f"{API}/fields", json=BADGE_FIELD)
    special = {"name": "Badge", "special_category": True}

    refused = dpo.put(f"{API}/categories/user.badge", json=special)
    renamed = dpo.put(f"{API}/categories/user.badge", json={"name": "Staff badge"})

    assert refused.status_code == 422
    [error] = refused.get_json()["errors"]
    assert error["field"] == "special_category"
    assert "crm.customers.badge" in error["message"]
    assert renamed.status_code == 200
    [stored] = dpo.get(f"{API}/categories").get_json()["items"]
    assert (stored["name"], stored["special_category"]) == ("Staff badge", False)


def test_a_category_is_not_put_under_its_own_sub_category(dpo, app):
    dpo.post(f"{API}/categories", json=BADGE)
    dpo.post(
        f"{API}/categories",
        json={"key": "user.badge.colour", "name": "Colour", "parent": "user.badge"},
    )

    reply = dpo.put(
        f"{API}/categories/user.badge",
        json={"name": "Badge", "parent": "user.badge.colour"},
    )
    deleted = dpo.delete(f"{API}/categories/user.badge")

    assert reply.status_code == 422
    assert reply.get_json()["errors"][0]["field"] == "parent"
    assert deleted.status_code == 409
    assert deleted.get_json()["used_by"] == {"categories": ["user.badge.colour"]}
    assert _events(app, "registry.category_updated") == []


# --- the indexes a subject lookup needs ---------------------------------------------


def test_a_system_is_warned_of_lookup_columns_without_an_index(dpo, systems):
    assert dpo.get(f"{API}/systems/hr").get_json()["warnings"] == []
    assert dpo.get(f"{API}/systems/crm").get_json()["warnings"] == []

    engine = create_engine(f"sqlite:///{systems}")
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_hr_employees_bsn"))
        connection.execute(text("DROP INDEX ix_hr_employees_email"))
    engine.dispose()
    hr = dpo.get(f"{API}/systems/hr").get_json()

    assert [w.split("'")[1] for w in hr["warnings"]] == ["bsn", "email"]
    assert "hr_employees" in hr["warnings"][0]

    engine = create_engine(f"sqlite:///{systems}")
    with engine.begin() as connection:
        connection.execute(text("CREATE INDEX hr_employees_bsn ON hr_employees (bsn)"))
    engine.dispose()
    body = {k: v for k, v in hr.items() if k in {*SYSTEM, "connection"} - {"key"}}
    body["entities"] = [
        {k: e[k] for k in ("key", "name", "subject_category", "subject_key", "table")}
        for e in hr["entities"]
    ]
    replaced = dpo.put(f"{API}/systems/hr", json=body)

    assert replaced.status_code == 200, replaced.get_json()
    assert [w.split("'")[1] for w in replaced.get_json()["warnings"]] == ["email"]


def test_a_system_without_a_connection_has_no_warnings(dpo):
    assert dpo.post(f"{API}/systems", json=SYSTEM).get_json()["warnings"] == []


def test_the_openapi_document_describes_the_new_registry_routes(client):
    spec = client.get("/api/openapi.json").get_json()

    process = spec["paths"]["/api/v1/registry/processes/{process_id}/fields"]["get"]
    assert [p["name"] for p in process["parameters"] if p["in"] == "query"] == [
        "version"
    ]
    reply = process["responses"]["200"]["content"]["application/json"]["schema"]
    assert reply["$ref"].endswith("/ProcessFields")
    assert set(spec["paths"]["/api/v1/registry/purposes/{key}"]) >= {"put", "delete"}
    assert set(spec["paths"]["/api/v1/registry/categories/{key}"]) >= {"put", "delete"}
    checked = spec["components"]["schemas"]["SystemChecked"]["properties"]
    assert "warnings" in checked
