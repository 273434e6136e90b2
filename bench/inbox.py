"""Listing the task queue with 1,000 and with 100,000 open instances.

One officer's queue holds a ready task of every open instance, each instance with
its legal deadline and internal target. Timed, at the small size and again after
the large one is filled in, through the app in process (no HTTP, so the figures are
the listing's own): the web inbox's first page, the inbox 20 pages deep (read on
by the page's own "next page" cursor), and the API's task list, first page and
page 20 (OFFSET paging with a total count). The reference of each is the same
listing at the small size, so a ratio near 1 means the listing stays flat as the
queue grows. Writes bench/results/inbox.json.

    .venv/bin/python bench/inbox.py [--small 1000] [--large 100000] [--rounds 7]
        [--postgres URL]

--postgres drops every table of that database first (and creates it if missing).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from deadlines import ensure_postgres_database, fresh_database, insert_chunked
from engine_overhead import BenchError, build_app, environment, silence_app_log
from flask import Flask
from flask.testing import FlaskClient

from app.extensions import db
from app.models import Deadline, HumanTask, Instance
from app.models.deadlines import ESCALATE, PENDING, REMIND
from app.models.instances import RUNNING, TASK_READY
from app.services import definitions, instances, passwords, users
from app.web import inbox

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "inbox.json"
PROCESS_ID = "two_step_review"
ROLE = "privacy_officer"
PASSWORD = "bench password, not secret"
PAGE = inbox.PAGE_SIZE
DEEP = 20
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEXT = re.compile(r'href="([^"]*after=[^"]+)"')
TASK_ROW = re.compile(r'href="/tasks/[0-9a-f-]{36}"')


def populate(count: int, first: int, template: dict[str, Any]) -> None:
    """`count` more open instances, each with a ready task and two deadlines."""
    instance_rows, task_rows, deadline_rows = [], [], []
    for number in range(first, first + count):
        instance_id = str(uuid.uuid4())
        # Spread over a year, so the queue's order is not the insertion order.
        due = START + timedelta(minutes=(number * 7919) % 525_600)
        instance_rows.append(
            {
                "id": instance_id,
                **template,
                "bpmn_process_id": PROCESS_ID,
                "business_key": f"REV-{number}",
                "status": RUNNING,
                "version": 1,
                "created_at": START,
                "updated_at": START,
            }
        )
        task_rows.append(
            {
                "task_guid": str(uuid.uuid4()),
                "instance_id": instance_id,
                "bpmn_process_id": PROCESS_ID,
                "bpmn_id": "prepare",
                "title": "Prepare the review",
                "lane": "Privacy officer",
                "role": ROLE,
                "form_name": "review_prepare",
                "purpose": "compliance_review",
                "status": TASK_READY,
                "created_at": START,
                "due_at": due,
            }
        )
        for name, kind, action, before in (
            ("reply", "legal", ESCALATE, timedelta(0)),
            ("reply.target", "internal_target", REMIND, timedelta(days=3)),
        ):
            deadline_rows.append(
                {
                    "instance_id": instance_id,
                    "name": name,
                    "kind": kind,
                    "action": action,
                    "role": "dpo",
                    "due_at": due - before,
                    "rule": {"article": "Art 12(3)", "rule": "bench"},
                    "state": PENDING,
                    "attempts": 0,
                    "created_at": START,
                }
            )
    insert_chunked(Instance.__table__, instance_rows)
    insert_chunked(HumanTask.__table__, task_rows)
    insert_chunked(Deadline.__table__, deadline_rows)


def setup(app: Flask) -> tuple[dict[str, Any], str]:
    with app.app_context():
        fresh_database()
        definitions.deploy_directory(ROOT / "workflows", ROOT / "forms")
        user = users.create_user("bench", [ROLE])
        passwords.set_password(user, PASSWORD)
        token = users.create_token(user, "bench")
        template = instances.start(PROCESS_ID, {}, None, user.id)
        db.session.commit()
        # The real instance's own task would join the queue: keep only copies.
        db.session.execute(sa.delete(HumanTask))
        db.session.commit()
        copied = {
            "definition_version_id": template.definition_version_id,
            "state": template.state,
            "state_format": template.state_format,
        }
        return copied, token


def signed_in(app: Flask) -> FlaskClient:
    client = app.test_client()
    token = CSRF.search(client.get("/sign-in").get_data(as_text=True)).group(1)
    reply = client.post(
        "/sign-in", data={"name": "bench", "password": PASSWORD, "csrf_token": token}
    )
    if reply.status_code != 302:
        raise BenchError(f"sign-in answered {reply.status_code}")
    return client


def median_ms(call: Callable[[], Any], rounds: int) -> float:
    call()
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def inbox_page(client: FlaskClient, url: str) -> str:
    reply = client.get(url)
    if reply.status_code != 200:
        raise BenchError(f"GET {url}: {reply.status_code} {reply.location}")
    page = reply.get_data(as_text=True)
    rows = len(TASK_ROW.findall(page))
    if rows != PAGE:
        raise BenchError(f"GET {url} showed {rows} tasks, not {PAGE}")
    return page


def deep_inbox_url(client: FlaskClient) -> str:
    """Follow the page's own next-page link DEEP times; the last page's URL."""
    url = f"/inbox?queue={ROLE}"
    for _ in range(DEEP - 1):
        found = NEXT.search(inbox_page(client, url))
        if found is None:
            raise BenchError("the inbox has no next-page link")
        url = html.unescape(found.group(1))
    return url


def api_page(client: FlaskClient, token: str, page: int, total: int) -> None:
    url = f"/api/v1/tasks?page_size={PAGE}&page={page}"
    reply = client.get(url, headers={"Authorization": f"Bearer {token}"})
    body = reply.get_json()
    if reply.status_code != 200 or len(body["items"]) != PAGE:
        raise BenchError(f"GET {url}: {reply.status_code} {reply.location}")
    if body["total"] != total:
        raise BenchError(f"the API counted {body['total']} tasks, not {total}")


def measure(app: Flask, token: str, total: int, rounds: int) -> dict[str, float]:
    client = signed_in(app)
    deep = deep_inbox_url(client)
    api = app.test_client()
    return {
        "web inbox, first page": median_ms(
            lambda: inbox_page(client, "/inbox"), rounds
        ),
        f"web inbox, page {DEEP} (cursor)": median_ms(
            lambda: inbox_page(client, deep), rounds
        ),
        "API task list, first page (with total)": median_ms(
            lambda: api_page(api, token, 1, total), rounds
        ),
        f"API task list, page {DEEP} (offset, with total)": median_ms(
            lambda: api_page(api, token, DEEP, total), rounds
        ),
    }


def run(url: str, label: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    app = build_app(url)
    silence_app_log()
    template, token = setup(app)
    # Requests run outside any app context of ours, each in its own, as served.
    with app.app_context():
        populate(args.small, 0, template)
    small = measure(app, token, args.small, args.rounds)
    with app.app_context():
        populate(args.large - args.small, args.small, template)
    large = measure(app, token, args.large, args.rounds)
    with app.app_context():
        queued = db.session.scalar(sa.select(sa.func.count()).select_from(HumanTask))
        db.engine.dispose()
    app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
    if queued != args.large:
        raise BenchError(f"{queued} tasks queued, not {args.large}")
    return [
        {
            "benchmark": f"{name}, {args.large:,} open instances",
            "database": label,
            "service": round(large[name], 3),
            "reference": round(small[name], 3),
            "reference_is": f"the same with {args.small:,}",
            "unit": "ms",
            "ratio": round(large[name] / small[name], 3),
        }
        for name in small
    ]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--postgres", help="a PostgreSQL URL this run may empty")
    args = parser.parse_args()
    if not PAGE * DEEP <= args.small < args.large:
        parser.error(f"need {PAGE * DEEP} <= --small < --large")
    return args


def main() -> int:
    args = arguments()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as folder:
        rows += run(f"sqlite:///{Path(folder) / 'inbox.sqlite3'}", "SQLite", args)
    if args.postgres:
        ensure_postgres_database(args.postgres)
        rows += run(args.postgres, "PostgreSQL", args)
    for r in rows:
        print(
            f"{r['benchmark']:<62} {r['database']:<11} {r['service']:8.2f} ms "
            f"{r['reference']:8.2f} ms {r['ratio']:6.2f}x"
        )
    document = environment() | {"small": args.small, "large": args.large}
    RESULTS.write_text(json.dumps(document | {"results": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
