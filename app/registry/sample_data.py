"""The demo's sample systems: one SQLite database of made-up people.

Every person is fake and generated from a fixed seed, so each run makes the same
rows: names built from Dutch words for "example" and "test", e-mail addresses at
example.org (RFC 2606), and BSNs that pass the eleven-test and all start with
9999, so a demo value is easy to tell from a real one.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    select,
)

SEED = 20261203
EMPLOYEES = 30
CUSTOMERS = 40
# The first few employees are customers too, under the same e-mail address.
SHARED = 3
SEGMENTS = ("garden", "kitchen", "books", "outdoor", "music")

metadata = MetaData()
hr_employees = Table(
    "hr_employees",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("employee_number", String(10), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("email", String(200), nullable=False, index=True),
    Column("bsn", String(9), nullable=False, index=True),
    Column("leave_balance", Integer, nullable=False),
    Column("has_medical_note", Boolean, nullable=False),
    Column("employment_ended_on", Date),
)
crm_customers = Table(
    "crm_customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False, unique=True),
    Column("phone", String(20), nullable=False, index=True),
    Column("address", String(300), nullable=False),
    Column("contract_ended_on", Date),
)
billing_invoices = Table(
    "billing_invoices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_email", String(200), nullable=False, index=True),
    Column("amount_cents", Integer, nullable=False),
    Column("invoice_date", Date, nullable=False),
)
marketing_segments = Table(
    "marketing_segments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_email", String(200), nullable=False, index=True),
    Column("interest_segment", String(40), nullable=False),
)

FIRST_NAMES = (
    "Anna", "Bram", "Chloe", "Daan", "Eva", "Finn", "Gijs", "Hanna", "Isa", "Jesse",
    "Kim", "Lars", "Mila", "Noah", "Olivia", "Pim", "Roos", "Sem", "Tess", "Vera",
)  # fmt: skip
SURNAMES = (
    "Voorbeeld", "Proef", "Testsma", "Nepkens", "Verzonnen", "Fictief", "Demostra",
)  # fmt: skip


def fake_bsn(rng: random.Random) -> str:
    """A BSN starting with 9999 that passes the eleven-test."""
    while True:
        digits = [9, 9, 9, 9, *(rng.randrange(10) for _ in range(4))]
        check = sum(d * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return "".join(map(str, digits)) + str(check)


def is_valid_bsn(bsn: str) -> bool:
    """The eleven-test: weights 9..2 and -1 over the digits, a multiple of 11."""
    if len(bsn) != 9 or not bsn.isdigit():
        return False
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    return sum(int(d) * w for d, w in zip(bsn, weights, strict=True)) % 11 == 0


def people(rng: random.Random, count: int) -> list[dict[str, str]]:
    """Made-up people with distinct names and example.org addresses."""
    out = []
    for number in range(1, count + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        email = f"{first}.{last}.{number}@example.org".lower()
        out.append({"name": f"{first} {last}", "email": email})
    return out


def employment_ended_on(number: int) -> date | None:
    """Who has left, and when: fixed by the employee's number, not the seed.

    Every sixth left early in 2023, employee 5 in 2018, and every sixth counting
    from the first in mid-2024; the others still work here.
    """
    if number == 5:
        return date(2018, 6, 29)
    if number % 6 == 0:
        return date(2023, 1, 31)
    if number % 6 == 1:
        return date(2024, 6, 28)
    return None


def contract_ended_on(number: int) -> date | None:
    """Every eighth customer's contract ended in 2023, every eighth from the fourth
    at the end of 2025; the others are still customers."""
    if number % 8 == 0:
        return date(2023, 9, 29)
    if number % 8 == 4:
        return date(2025, 12, 31)
    return None


def rows(seed: int = SEED) -> dict[Table, list[dict[str, Any]]]:
    """Every table's rows, the same for the same seed."""
    rng = random.Random(seed)
    persons = people(rng, EMPLOYEES + CUSTOMERS - SHARED)
    employees = persons[:EMPLOYEES]
    customers = persons[EMPLOYEES - SHARED :]
    return {
        hr_employees: [
            {
                "employee_number": f"E{1000 + n}",
                "name": p["name"],
                "email": p["email"],
                "bsn": fake_bsn(rng),
                "leave_balance": rng.randrange(0, 200),
                "has_medical_note": rng.random() < 0.15,
                "employment_ended_on": employment_ended_on(n),
            }
            for n, p in enumerate(employees, start=1)
        ],
        crm_customers: [
            {
                "email": p["email"],
                "contract_ended_on": contract_ended_on(m),
                "phone": f"+31 6 0000 {rng.randrange(10000):04d}",
                "address": f"Voorbeeldstraat {rng.randrange(1, 200)}, "
                f"{rng.randrange(1000, 9999)} XX Testdorp",
            }
            for m, p in enumerate(customers, start=1)
        ],
        billing_invoices: [
            {
                "customer_email": p["email"],
                "amount_cents": rng.randrange(500, 50000),
                "invoice_date": date(2025, 1, 1) + timedelta(days=rng.randrange(600)),
            }
            for p in customers
            for _ in range(rng.randrange(1, 4))
        ],
        marketing_segments: [
            {"customer_email": p["email"], "interest_segment": rng.choice(SEGMENTS)}
            for p in customers
            if rng.random() < 0.6
        ],
    }


def create(url: str) -> bool:
    """Create the sample database once; False when it holds its people already."""
    engine = create_engine(url)
    try:
        return _fill(engine)
    finally:
        engine.dispose()


def _fill(engine: Engine) -> bool:
    with engine.begin() as connection:
        metadata.create_all(connection)
        if connection.scalar(select(func.count()).select_from(hr_employees)):
            return False
        for table, values in rows().items():
            connection.execute(insert(table), values)
    return True
