"""The SQL connector on the demo's sample systems: locate, read, refuse."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select

from app.extensions import db
from app.models import System
from app.registry import sample_data
from app.services import catalogue, connectors
from app.services.registry_schemas import SystemSchema

ROWS = sample_data.rows()
EMPLOYEES = ROWS[sample_data.hr_employees]
CUSTOMERS = ROWS[sample_data.crm_customers]
# The last employees are customers too, under the same address.
SHARED = EMPLOYEES[-1]


@pytest.fixture
def loaded(ctx):
    catalogue.load_catalogue(catalogue.DEMO)
    db.session.commit()


def matches(subject: connectors.Subject) -> dict[str, list]:
    return {match.name: match.row_keys for match in subject.matches}


def test_the_sample_data_is_the_same_each_time_and_fake():
    again = sample_data.rows()

    assert again[sample_data.hr_employees] == EMPLOYEES
    assert all(sample_data.is_valid_bsn(e["bsn"]) for e in EMPLOYEES)
    assert all(e["bsn"].startswith("9999") for e in EMPLOYEES)
    assert all(c["email"].endswith("@example.org") for c in CUSTOMERS)
    assert sum(c["email"] in {e["email"] for e in EMPLOYEES} for c in CUSTOMERS) == 3


def test_creating_the_sample_database_twice_adds_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'systems.sqlite3'}"

    first, second = sample_data.create(url), sample_data.create(url)

    engine = create_engine(url)
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).select_from(sample_data.hr_employees)
        )
    engine.dispose()
    assert (first, second) == (True, False)
    assert count == len(EMPLOYEES)


def test_a_shared_subject_is_located_in_hr_crm_and_billing(loaded):
    subject = connectors.locate({"email": SHARED["email"]})

    found = matches(subject)
    assert set(found) >= {"hr.employees", "crm.customers", "billing.invoices"}
    assert found["hr.employees"] == [{"id": len(EMPLOYEES)}]
    assert all(set(key) == {"id"} for keys in found.values() for key in keys)


def test_a_subject_key_and_an_identifier_field_locate_by_name(loaded):
    by_number = connectors.locate({"employee_number": SHARED["employee_number"]})
    by_bsn = connectors.locate({"bsn": SHARED["bsn"]})

    assert matches(by_number) == matches(by_bsn) == {"hr.employees": [{"id": 30}]}


def test_read_returns_only_the_fields_named(loaded):
    subject = connectors.locate({"employee_number": SHARED["employee_number"]})

    copy = connectors.read(subject, ["hr.employees.name", "hr.employees.medical_note"])

    assert copy.systems == {
        "hr": {
            "employees": [
                {
                    "hr.employees.medical_note": SHARED["has_medical_note"],
                    "hr.employees.name": SHARED["name"],
                }
            ]
        }
    }


@pytest.mark.parametrize(
    "value",
    [
        "x' OR '1'='1",
        "E1001' OR 1=1 --",
        "E1001'; DROP TABLE hr_employees; --",
        "%",
    ],
)
def test_sql_in_an_identity_matches_nothing_and_changes_nothing(loaded, value):
    subject = connectors.locate({"employee_number": value, "email": value})

    assert subject.matches == []
    again = connectors.locate({"employee_number": "E1001"})
    assert matches(again) == {"hr.employees": [{"id": 1}]}


def test_an_identity_no_entity_is_searched_by_is_refused(loaded):
    with pytest.raises(connectors.Unprocessable) as refused:
        connectors.locate({"shoe_size": "44"})

    assert refused.value.errors == [
        {"field": "identities.shoe_size", "message": "Matches no entity."}
    ]


def test_an_unreachable_system_is_a_problem_naming_it(loaded):
    hr = db.session.scalar(select(System).where(System.key == "hr"))
    hr.connection = "sqlite:////no/such/folder/hr.sqlite3"

    with pytest.raises(connectors.ConnectorUnreachable) as refused:
        connectors.locate({"employee_number": "E1001"})

    assert refused.value.status == 503
    assert "'hr'" in refused.value.detail


def test_a_table_the_database_lacks_is_a_mismatch(loaded, tmp_path):
    hr = db.session.scalar(select(System).where(System.key == "hr"))
    hr.connection = f"sqlite:///{tmp_path / 'empty.sqlite3'}"

    with pytest.raises(connectors.ConnectorFailed) as refused:
        connectors.locate({"employee_number": "E1001"})

    assert refused.value.code == "connector-mismatch"
    assert "hr_employees" in refused.value.detail


@pytest.mark.parametrize(
    ("connection", "accepted"),
    [
        ("env:HR_DATABASE_URL", True),
        ("postgresql+psycopg://reader@db.internal/hr", True),
        ("postgresql+psycopg://reader:secret@db.internal/hr", False),
        ("env:lower_case", False),
        ("not a url", False),
    ],
)
def test_a_connection_is_an_env_name_or_a_url_without_password(connection, accepted):
    system = {
        "name": "HR",
        "owner": "HR",
        "location": "NL",
        "country": "NL",
        "role": "internal",
        "connection": connection,
    }

    errors = SystemSchema().validate(system)

    assert (errors == {}) is accepted
    if not accepted:
        assert "secret" not in str(errors)


def test_an_unset_environment_variable_is_named(loaded, monkeypatch):
    monkeypatch.delenv("HR_DATABASE_URL", raising=False)
    hr = db.session.scalar(select(System).where(System.key == "hr"))
    hr.connection = "env:HR_DATABASE_URL"

    with pytest.raises(connectors.ConnectorUnreachable) as refused:
        connectors.locate({"employee_number": "E1001"})

    assert "HR_DATABASE_URL" in refused.value.detail


def test_a_system_whose_indexes_cannot_be_checked_is_warned_without_its_url(loaded):
    hr = db.session.scalar(select(System).where(System.key == "hr"))
    hr.connection = "sqlite:////no/such/folder/hr.sqlite3"

    [warning] = connectors.index_warnings(hr)

    assert "'hr'" in warning
    assert "not checked" in warning
    assert "/no/such/folder" not in warning


def test_a_column_the_registry_maps_but_the_table_lacks_is_named(loaded, tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TABLE crm_customers (id INTEGER PRIMARY KEY, email TEXT UNIQUE)"
        )
    engine.dispose()
    crm = db.session.scalar(select(System).where(System.key == "crm"))
    crm.connection = url

    warnings = connectors.index_warnings(crm)

    assert warnings == [
        "The table 'crm_customers' of 'crm' has no column 'phone' that the registry "
        "maps."
    ]
