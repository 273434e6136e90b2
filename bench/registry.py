"""Locate and export one subject in a connector table of 1,000,000 rows.

Builds a temporary SQLite file whose `customers` table holds ROWS made-up people
(executemany, one transaction), maps it in the registry as system `big`, and times
`connectors.locate` and the JSON export of one subject, first without an index on
the subject-key column (a full scan), then with it. Prints the medians and ratios.

    .venv/bin/python bench/registry.py [--rows 1000000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import flask_migrate
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent.parent))

from engine_overhead import environment  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.services import catalogue, connectors, subjects  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "registry.json"
CATALOGUE = """
systems:
  big:
    name: Large customer table
    owner: Bench
    location: Temporary file
    country: NL
    role: internal
    connection: env:DEMO_SYSTEMS_URL
    entities:
      customers:
        name: Customers
        subject_category: customer
        subject_key: email
        fields:
          email:
            name: E-mail address
            data_category: user.contact.email
            purposes: [essential.service]
            legal_basis: contract
            origin: provided
            retention: {period: P2Y, anchor: end_of_contract}
          phone:
            name: Telephone number
            data_category: user.contact.phone_number
            purposes: [essential.service]
            legal_basis: contract
            origin: provided
            retention: {period: P2Y, anchor: end_of_contract}
"""


def build(url: str, rows: int) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE customers (id INTEGER PRIMARY KEY, "
                "email VARCHAR(200) NOT NULL, phone VARCHAR(20) NOT NULL)"
            )
        )
        connection.execute(
            text("INSERT INTO customers (email, phone) VALUES (:email, :phone)"),
            [
                {"email": f"person{n}@example.org", "phone": f"+31 6 {n:08d}"}
                for n in range(rows)
            ],
        )
    engine.dispose()


def index(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE INDEX ix_customers_email ON customers (email)"))
    engine.dispose()


def median_seconds(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(email: str, rounds: int) -> tuple[float, float]:
    identities = {"email": email}

    def export() -> None:
        subject = connectors.locate(identities)
        assert len(subject.matches[0].row_keys) == 1
        subjects.export_document(subject)

    locate = median_seconds(lambda: connectors.locate(identities), rounds)
    return locate, median_seconds(export, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    systems_url = f"sqlite:///{folder / 'systems.sqlite3'}"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'service.sqlite3'}",
            "DEMO_SYSTEMS_URL": systems_url,
        }
    )
    started = time.perf_counter()
    build(systems_url, args.rows)
    print(f"built {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
    email = f"person{args.rows // 2}@example.org"
    with app.app_context():
        flask_migrate.upgrade()
        catalogue.load_catalogue(CATALOGUE)
        db.session.commit()
        plain = measure(email, args.rounds)
        index(systems_url)
        indexed = measure(email, args.rounds)
        connectors.dispose_engines()
    print(f"{'':8} {'no index':>12} {'index':>12} {'ratio':>8}")
    results = []
    for name, before, after in zip(("locate", "export"), plain, indexed, strict=True):
        print(
            f"{name:8} {before * 1000:10.2f} ms {after * 1000:10.2f} ms "
            f"{before / after:7.0f}x"
        )
        results.append(
            {"figure": name, "no_index_ms": before * 1000, "index_ms": after * 1000}
        )
    document = environment() | {"rows": args.rows, "results": results}
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
