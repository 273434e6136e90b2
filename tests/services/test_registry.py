"""The registry's catalogue: YAML in and out, its vocabulary rules, all or nothing."""

from __future__ import annotations

import copy

import pytest
import yaml
from sqlalchemy import func, select

from app.errors import BadRequest, Conflict, Unprocessable
from app.extensions import db
from app.models import AuditEvent, Field
from app.registry import sample_data
from app.services import catalogue, forms, registry, taxonomy

DEMO_TEXT = catalogue.DEMO.read_text()
HR = "systems.hr.entities.employees.fields"
CRM = "systems.crm.entities.customers.fields"


def demo() -> dict:
    return yaml.safe_load(DEMO_TEXT)


def hr_field(document: dict, key: str) -> dict:
    return document["systems"]["hr"]["entities"]["employees"]["fields"][key]


def crm_field(document: dict, key: str) -> dict:
    return document["systems"]["crm"]["entities"]["customers"]["fields"][key]


def as_yaml(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False)


@pytest.fixture
def loaded(ctx):
    catalogue.load_catalogue(catalogue.DEMO)
    db.session.commit()


def audit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(AuditEvent))


def test_the_demo_catalogue_round_trips_through_the_database(loaded):
    exported = catalogue.export_catalogue()

    assert catalogue.validate(exported) == catalogue.validate(demo())
    again = catalogue.load_catalogue(catalogue.dump_yaml(exported))
    assert not again.changed


def test_the_demo_holds_the_leave_example(loaded):
    bsn = registry.get_field("hr.employees.bsn")
    note = registry.get_field("hr.employees.medical_note")

    assert bsn.purposes == ["payroll_tax"]
    assert bsn.legal_basis == "legal_obligation"  # the purpose's default
    assert note.special_category and note.art9_condition == "employment_social_security"
    assert "leave_management" in registry.get_field("hr.employees.name").purposes
    assert registry.get_field("billing.invoices.amount").retention["period"] == "P7Y"


def test_loading_the_same_file_again_changes_nothing(loaded):
    events = audit_count()

    report = catalogue.load_catalogue(catalogue.DEMO)

    assert not report.changed
    assert report.counts()["fields"] == {
        "created": 0,
        "updated": 0,
        "unchanged": 14,
        "removed": 0,
    }
    assert audit_count() == events


def test_a_changed_field_is_updated_in_place(loaded):
    document = demo()
    crm_field(document, "phone")["name"] = "Mobile number"
    before = registry.get_field("crm.customers.phone").id

    report = catalogue.load_catalogue(as_yaml(document))

    assert report.changes["fields"]["updated"] == ["crm.customers.phone"]
    assert registry.get_field("crm.customers.phone").id == before


def test_a_field_left_out_is_kept_unless_replace_is_asked(loaded):
    document = demo()
    del document["systems"]["hr"]["entities"]["employees"]["fields"]["bsn"]

    kept = catalogue.load_catalogue(as_yaml(document))
    assert registry.get_field("hr.employees.bsn")
    assert not kept.changes["fields"].get("removed")

    replaced = catalogue.load_catalogue(as_yaml(document), replace=True)
    assert replaced.changes["fields"]["removed"] == ["hr.employees.bsn"]
    assert "hr.employees.bsn" not in registry.find_fields(["hr.employees.bsn"])


def test_replace_removes_whole_systems_and_purposes_the_file_omits(loaded):
    document = demo()
    del document["systems"]["marketing"]
    document["purposes"].pop("bookkeeping")
    document["systems"].pop("billing")

    report = catalogue.load_catalogue(as_yaml(document), replace=True)

    assert sorted(report.changes["systems"]["removed"]) == ["billing", "marketing"]
    assert report.changes["purposes"]["removed"] == ["bookkeeping"]
    assert registry.list_fields(system="billing") == []


def test_replace_keeps_a_field_a_deployed_form_binds(loaded):
    forms.deploy_form(
        "payroll_check",
        {
            "type": "object",
            "properties": {
                "bsn": {"type": "string", "x-registry-field": "hr.employees.bsn"}
            },
        },
    )
    document = demo()
    del document["systems"]["hr"]["entities"]["employees"]["fields"]["bsn"]

    with pytest.raises(Conflict) as refused:
        catalogue.load_catalogue(as_yaml(document), replace=True)

    assert "hr.employees.bsn" in refused.value.detail
    assert "payroll_check" in refused.value.detail


def _unknown_category(d):
    crm_field(d, "email")["data_category"] = "user.contact.emial"


def _no_art9_condition(d):
    del hr_field(d, "medical_note")["art9_condition"]


def _bad_legal_basis(d):
    hr_field(d, "bsn")["legal_basis"] = "because_we_can"


def _unknown_recipient(d):
    crm_field(d, "email")["recipients"] = [{"system": "mailr"}]


def _internal_recipient(d):
    crm_field(d, "email")["recipients"] = [{"system": "billing"}]


def _unknown_purpose(d):
    hr_field(d, "leave_balance")["purposes"] = ["leave_managment"]


def _special_marked_ordinary(d):
    hr_field(d, "medical_note")["special_category"] = False


def _art9_on_ordinary(d):
    crm_field(d, "phone")["art9_condition"] = "explicit_consent"


def _no_basis_and_no_default(d):
    del crm_field(d, "address")["legal_basis"]


def _period_without_anchor(d):
    del crm_field(d, "phone")["retention"]["anchor"]


def _period_of_two_units(d):
    crm_field(d, "phone")["retention"]["period"] = "P1Y6M"


def _no_period_no_criterion(d):
    crm_field(d, "phone")["retention"] = {"period": None}


def _decision_without_logic(d):
    crm_field(d, "phone")["automated_decision"] = True


def _unquoted_norway(d):
    d["systems"]["mailer"]["country"] = False


def _unknown_country(d):
    d["systems"]["mailer"]["country"] = "XX"


def _signed_without_date(d):
    d["systems"]["mailer"]["processor_agreement"] = {"status": "signed"}


def _unknown_subject_category(d):
    d["systems"]["hr"]["entities"]["employees"]["subject_category"] = "employe"


def _purpose_named_like_fides(d):
    d["purposes"]["marketing"] = {"name": "Ours"}


UNION = "user.trade_union_membership"


def with_union_category(d: dict) -> dict:
    """The document with an organisation category Fides lacks (Art 9(1))."""
    d["categories"] = {
        UNION: {
            "name": "Trade-union membership",
            "special_category": True,
            "art9_basis_note": "Art 9(1): trade-union membership.",
            "parent": "user",
        }
    }
    return d


def _fides_key_as_category(d):
    d["categories"] = {"user.contact.email": {"name": "Ours"}}


def _org_special_without_condition(d):
    with_union_category(d)
    crm_field(d, "phone")["data_category"] = UNION


def _category_under_unknown_parent(d):
    with_union_category(d)["categories"][UNION]["parent"] = "user.contakt"


def _ordinary_category_under_special_parent(d):
    d["categories"] = {"user.health_and_medical.sick_note": {"name": "Sick note"}}


def _unknown_section(d):
    d["connectors"] = {}


def _field_not_a_mapping(d):
    d["systems"]["hr"]["entities"]["employees"]["fields"]["bsn"] = "secret"


def _bad_key(d):
    d["systems"]["Billing-2"] = d["systems"].pop("billing")


REFUSALS = [
    (_unknown_category, f"{CRM}.email.data_category", "user.contact.email"),
    (_no_art9_condition, f"{HR}.medical_note.art9_condition", "Art 9(2)"),
    (_bad_legal_basis, f"{HR}.bsn.legal_basis", "legal_obligation"),
    (_unknown_recipient, f"{CRM}.email.recipients.0.system", "mailer"),
    (_internal_recipient, f"{CRM}.email.recipients.0.system", "internal"),
    (_unknown_purpose, f"{HR}.leave_balance.purposes.0", "leave_management"),
    (_special_marked_ordinary, f"{HR}.medical_note.special_category", "Art 9(1)"),
    (_art9_on_ordinary, f"{CRM}.phone.art9_condition", "Only special"),
    (_no_basis_and_no_default, f"{CRM}.address.legal_basis", "Art 6(1)"),
    (_period_without_anchor, f"{CRM}.phone.retention.anchor", "runs from"),
    (_period_of_two_units, f"{CRM}.phone.retention.period", "one unit"),
    (_no_period_no_criterion, f"{CRM}.phone.retention.criterion", "criterion"),
    (_decision_without_logic, f"{CRM}.phone.automated_decision_logic", "logic"),
    (_unquoted_norway, "systems.mailer.country", "quotes"),
    (_unknown_country, "systems.mailer.country", "ISO 3166"),
    (_signed_without_date, "systems.mailer.processor_agreement.signed_on", "date"),
    (
        _unknown_subject_category,
        "systems.hr.entities.employees.subject_category",
        "employee",
    ),
    (_purpose_named_like_fides, "purposes.marketing", "Fides"),
    (_fides_key_as_category, "categories.user.contact.email", "Fides"),
    (_org_special_without_condition, f"{CRM}.phone.art9_condition", "Art 9(2)"),
    (_category_under_unknown_parent, f"categories.{UNION}.parent", "user.contact"),
    (
        _ordinary_category_under_special_parent,
        "categories.user.health_and_medical.sick_note.special_category",
        "Art 9(1)",
    ),
    (_unknown_section, "connectors", "Unknown section"),
    (_field_not_a_mapping, f"{HR}.bsn", "mapping"),
    (_bad_key, "systems.Billing-2", "key"),
]


@pytest.mark.parametrize(
    ("change", "path", "words"), REFUSALS, ids=[r[0].__name__[1:] for r in REFUSALS]
)
def test_a_broken_catalogue_is_refused_by_yaml_path_and_changes_nothing(
    loaded, change, path, words
):
    before, events = catalogue.export_catalogue(), audit_count()
    document = demo()
    crm_field(document, "phone")["name"] = "A change that must not land"
    change(document)

    with pytest.raises(Unprocessable) as refused:
        catalogue.load_catalogue(as_yaml(document))

    problems = {e["field"]: e["message"] for e in refused.value.errors}
    assert path in problems, problems
    assert words in problems[path]
    db.session.rollback()
    assert catalogue.export_catalogue() == before
    assert audit_count() == events


def test_every_problem_of_a_file_is_reported_at_once(ctx):
    document = demo()
    _unknown_category(document)
    _no_art9_condition(document)
    _unknown_recipient(document)

    with pytest.raises(Unprocessable) as refused:
        catalogue.load_catalogue(as_yaml(document))

    assert len(refused.value.errors) == 3
    assert "3 problems" in refused.value.detail


def test_an_unknown_category_suggests_the_nearest_keys(ctx):
    document = demo()
    hr_field(document, "bsn")["data_category"] = "user.government_id.national_id"

    with pytest.raises(Unprocessable) as refused:
        catalogue.load_catalogue(as_yaml(document))

    message = refused.value.errors[0]["message"]
    assert "'user.government_id.national_id'" in message
    assert "user.government_id.national_identification_number" in message


def test_a_field_may_name_an_organisation_category_of_the_file(ctx):
    document = with_union_category(demo())
    fields = document["systems"]["hr"]["entities"]["employees"]["fields"]
    fields["union_dues"] = {
        **copy.deepcopy(fields["leave_balance"]),
        "name": "Union dues withheld",
        "data_category": UNION,
        "art9_condition": "employment_social_security",
    }

    report = catalogue.load_catalogue(as_yaml(document))

    assert report.changes["categories"]["created"] == [UNION]
    dues = registry.get_field("hr.employees.union_dues")
    assert dues.data_category == UNION and dues.special_category
    assert catalogue.export_catalogue()["categories"][UNION]["parent"] == "user"


def test_an_unknown_category_suggests_organisation_keys_too(ctx):
    document = with_union_category(demo())
    crm_field(document, "phone")["data_category"] = "user.trade_union_membershp"

    with pytest.raises(Unprocessable) as refused:
        catalogue.load_catalogue(as_yaml(document))

    problems = {e["field"]: e["message"] for e in refused.value.errors}
    assert UNION in problems[f"{CRM}.phone.data_category"]


@pytest.mark.parametrize("text", ["- hr\n- crm\n", "just words\n", "42\n", ""])
def test_yaml_that_is_not_a_mapping_is_refused(ctx, text):
    with pytest.raises(Unprocessable) as refused:
        catalogue.load_catalogue(text)

    assert refused.value.code == "catalogue-invalid"


@pytest.mark.parametrize(
    "text",
    [
        "systems: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
        "purposes: !!python/object:collections.OrderedDict {}\n",
        "systems: !!python/name:builtins.print\n",
    ],
)
def test_yaml_tags_that_build_python_objects_are_refused(ctx, text):
    with pytest.raises(BadRequest) as refused:
        catalogue.load_catalogue(text)

    assert refused.value.code == "yaml-tag-refused"
    assert registry.list_systems() == []


def test_malformed_yaml_names_its_line(ctx):
    with pytest.raises(BadRequest) as refused:
        catalogue.load_catalogue("systems:\n  hr: [unclosed\n")

    assert refused.value.code == "malformed-yaml"
    assert "line" in refused.value.detail


def test_an_alias_bomb_is_refused_before_it_is_walked(ctx):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 8):
        levels.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 10) + "]")
    text = "purposes:\n" + "\n".join("  " + line for line in levels) + "\n"

    with pytest.raises(BadRequest) as refused:
        catalogue.load_catalogue(text)

    assert refused.value.code == "catalogue-too-large"


def test_the_special_categories_are_derived_from_the_installed_taxonomy():
    categories = taxonomy.fides().categories

    for root in taxonomy.SPECIAL_ROOTS:
        assert root in categories, root
    special = taxonomy.special_categories()
    assert "user.health_and_medical.genetic" in special
    assert "user.biometric.fingerprint" in special
    assert "user.contact.email" not in special


def test_a_deprecated_fides_use_names_its_successor(ctx):
    document = demo()
    crm_field(document, "phone")["purposes"] = ["personalize.profiling"]

    with pytest.raises(Unprocessable) as refused:
        catalogue.load_catalogue(as_yaml(document))

    assert "personalize.content.profiling" in refused.value.errors[0]["message"]


def test_a_loaded_catalogue_is_audited_by_keys_only(loaded):
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "registry.catalogue_loaded")
    ).one()

    assert "hr.employees.bsn" in event.details["fields_created"]
    assert "Citizen service number" not in str(event.details)


def test_the_cli_loads_a_file_and_replace_removes_the_rest(app, ctx, tmp_path):
    cli = app.test_cli_runner()
    path = tmp_path / "catalogue.yaml"
    path.write_text(DEMO_TEXT)

    first = cli.invoke(args=["registry", "load", str(path)])
    second = cli.invoke(args=["registry", "load", str(path)])

    assert first.exit_code == 0, first.output
    assert "fields: 14 created" in first.stdout
    assert "fields: 14 unchanged" in second.stdout
    document = demo()
    del document["systems"]["marketing"]
    path.write_text(as_yaml(document))
    replaced = cli.invoke(args=["registry", "load", str(path), "--replace"])
    assert "1 removed" in replaced.stdout
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Field)) == 12


def test_the_cli_refuses_a_broken_file_and_exits_1(app, ctx, tmp_path):
    path = tmp_path / "catalogue.yaml"
    document = demo()
    _unknown_category(document)
    path.write_text(as_yaml(document))

    result = app.test_cli_runner().invoke(args=["registry", "load", str(path)])

    assert result.exit_code == 1
    assert "data_category" in result.stderr
    assert registry.list_systems() == []


def test_the_demo_command_loads_the_catalogue_once(app, ctx):
    cli = app.test_cli_runner()

    cli.invoke(args=["demo"])
    cli.invoke(args=["demo"])

    db.session.rollback()
    assert len(registry.list_fields()) == 14
    loads = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "registry.catalogue_loaded")
    ).all()
    assert len(loads) == 1


def test_a_form_binding_an_unknown_field_is_refused_with_a_suggestion(loaded):
    schema = {
        "type": "object",
        "properties": {
            "bsn": {"type": "string", "x-registry-field": "hr.employee.bsn"}
        },
    }

    with pytest.raises(Unprocessable) as refused:
        forms.deploy_form("payroll_check", schema)

    error = refused.value.errors[0]
    assert error["field"] == "payroll_check.properties.bsn.x-registry-field"
    assert "hr.employees.bsn" in error["message"]


def test_bindings_are_found_in_nested_objects_and_arrays():
    schema = {
        "type": "object",
        "properties": {
            "employee": {
                "type": "object",
                "properties": {"name": {"x-registry-field": "hr.employees.name"}},
            },
            "invoices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "amount": {"x-registry-field": "billing.invoices.amount"}
                    },
                },
            },
        },
    }

    assert registry.bindings(schema) == {
        "employee.name": "hr.employees.name",
        "invoices.amount": "billing.invoices.amount",
    }


def test_a_validated_catalogue_is_not_the_input_it_was_given(ctx):
    document = demo()
    original = copy.deepcopy(document)

    catalogue.validate(document)

    assert document == original


def test_the_demo_deploys_the_leave_assessment_the_manager_works(app, make_user):
    employee = sample_data.rows()[sample_data.hr_employees][0]
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "example: leave_assessment" in result.output
    officer = make_user("olga", "privacy_officer")
    manager = make_user("mia", "manager")

    started = officer.post(
        "/api/v1/instances",
        json={
            "process_id": "leave_assessment",
            "data": {
                "subject": {"employee_number": employee["employee_number"]},
                "hours_requested": 16,
            },
        },
    )
    [task] = manager.get(
        f"/api/v1/tasks?instance_id={started.get_json()['id']}"
    ).get_json()["items"]
    opened = manager.get(f"/api/v1/tasks/{task['id']}")
    done = manager.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"data": {"decision": "approve"}}
    )

    assert task["role"] == "manager"
    assert opened.get_json()["data"] == {
        "name": employee["name"],
        "leave_balance": employee["leave_balance"],
        "hours_requested": 16,
    }
    assert employee["bsn"] not in opened.get_data(as_text=True)
    assert done.status_code == 200, done.get_json()
