"""The service over real HTTP: gunicorn workers on SQLite and on PostgreSQL.

Four figures, each beside a reference measured in the same run:

- a whole two-task instance (start, list, complete, list, complete) by one client,
  against the bare engine running the same instance in memory;
- task completions per second by 8 concurrent clients, against one client;
- signed webhook deliveries per second by 8 concurrent senders, each stored
  before its 202 and starting an instance, against the same 8 clients starting
  the same instances through the API;
- the resident memory of one web worker after it has run a stream of instances
  over a database holding 100,000 more, against the same worker after warm-up.

Every figure checks the database afterwards (instances completed, completions
recorded once, deliveries stored and processed) before it is printed. Writes
bench/results/http_service.json.

    .venv/bin/python bench/http_service.py [--workers 3] [--instances 100]
        [--memory-instances 1000] [--postgres URL] [--memory-only]

--postgres drops every table of that database first (and creates it if missing).
--memory-only runs the memory figure alone, for long runs such as
--memory-instances 100000 (about an hour on SQLite).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm
from deadlines import ensure_postgres_database, insert_chunked
from engine_overhead import (
    PROCESS_ID,
    TASK_DATA,
    BenchError,
    bare,
    build_app,
    environment,
    parse_specs,
    prepare_database,
    run_review,
    silence_app_log,
)

from app.extensions import db
from app.models import AuditEvent, HumanTask, Instance, WebhookDelivery
from app.models.instances import COMPLETED, TASK_COMPLETED
from app.services import signatures, webhooks

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "http_service.json"
GUNICORN = Path(sys.executable).with_name("gunicorn")
CLIENTS = 8
ENDPOINT = "bench_intake"
BACKGROUND_INSTANCES = 100_000


@dataclass
class Figure:
    name: str
    database: str
    value: float
    unit: str
    reference: float
    reference_label: str
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.value / self.reference if self.reference else float("nan")


# HTTP ---------------------------------------------------------------------------


class Client:
    """One keep-alive connection with a bearer token; checks every status."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(
        self,
        method: str,
        path: str,
        expected: int,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        sent = dict(self.headers) | (headers or {})
        raw = None
        if body is not None:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        self.connection.request(method, path, body=raw, headers=sent)
        reply = self.connection.getresponse()
        data = reply.read()
        if reply.status != expected:
            raise BenchError(f"{method} {path}: {reply.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def run_instance(self) -> None:
        """The five requests of one review, as engine_overhead's client makes them."""
        status = run_review(self.call)
        if status != COMPLETED:
            raise BenchError(f"a review instance ended {status}")

    def close(self) -> None:
        self.connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    token: str
    secret: str

    def client(self) -> Client:
        return Client(self.port, self.token)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for process {pid}")


def prepare(url: str) -> tuple[str, str]:
    """A migrated database with the workflows, a user's token and an endpoint."""
    app = build_app(url)
    silence_app_log()
    with app.app_context():
        token = prepare_database()
        endpoint = webhooks.create_endpoint(
            ENDPOINT,
            "start_process",
            {"process_id": PROCESS_ID, "data_fields": {"summary": "summary"}},
            None,
        )
        secret = endpoint.signing_secret
        db.session.commit()
        db.engine.dispose()
    app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
    return token, secret


@contextmanager
def served(url: str, workers: int, token: str, secret: str) -> Iterator[Server]:
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": url,
        "SECRET_KEY": "bench-only-secret",
        "WORKFLOWS_DIR": str(ROOT / "workflows"),
        "FORMS_DIR": str(ROOT / "forms"),
        "SCHEDULER_ENABLED": "0",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        str(GUNICORN),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "app:create_app()",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
    server = Server(port, process, token, secret)
    try:
        wait_until_up(server, workers)
        yield server
    finally:
        # The master stops its workers; the group is killed only if it does not.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_up(server: Server, workers: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError("gunicorn exited at start")
        try:
            probe = server.client()
            probe.call("GET", "/api/health", 200)
            probe.close()
            if len(server.worker_pids()) == workers:
                return
        except (OSError, BenchError):
            pass
        time.sleep(0.2)
    raise BenchError("gunicorn did not answer within 60 s")


def in_parallel(clients: int, work: Callable[[int], None]) -> float:
    """Run work(number) in `clients` threads at once; seconds until all end."""
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def run(number: int) -> None:
        start.wait()
        try:
            work(number)
        except BaseException as error:  # noqa: BLE001 - reported after the join
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise BenchError(f"{len(errors)} client(s) failed: {errors[0]}")
    return elapsed


# Checks -------------------------------------------------------------------------


@contextmanager
def database(url: str) -> Iterator[sa.orm.Session]:
    engine = sa.create_engine(url)
    try:
        with sa.orm.Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def count(session: sa.orm.Session, model: Any, *where: Any) -> int:
    query = sa.select(sa.func.count()).select_from(model).where(*where)
    return int(session.scalar(query) or 0)


def completions(session: sa.orm.Session) -> dict[str, int]:
    return {
        "tasks_completed": count(
            session, HumanTask, HumanTask.status == TASK_COMPLETED
        ),
        "task_completed_events": count(
            session, AuditEvent, AuditEvent.action == "task.completed"
        ),
    }


def require(condition: bool, message: str) -> None:
    if not condition:
        raise BenchError(message)


# Figures ------------------------------------------------------------------------


def bare_ms_per_instance(runs: int) -> float:
    specs = parse_specs()
    with bare(specs) as runner:
        for _ in range(20):
            runner.run_one()
        began = time.perf_counter()
        completed = sum(runner.run_one() for _ in range(runs))
        elapsed = time.perf_counter() - began
    require(completed == runs, "the bare engine did not complete every instance")
    return elapsed / runs * 1000


def whole_instance(server: Server, url: str, label: str, runs: int) -> Figure:
    client = server.client()
    for _ in range(10):
        client.run_instance()
    rounds = []
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(runs):
            client.run_instance()
        rounds.append((time.perf_counter() - began) / runs * 1000)
    client.close()
    with database(url) as session:
        done = count(session, Instance, Instance.status == COMPLETED)
        checks = {"instances_completed": done, **completions(session)}
    expected = 10 + 3 * runs
    require(done == expected, f"{done} of {expected} instances completed")
    require(checks["task_completed_events"] == 2 * expected, "completions not once")
    return Figure(
        "whole two-task instance over HTTP, one client",
        label,
        statistics.median(rounds),
        "ms",
        bare_ms_per_instance(runs * 3),
        "bare engine, same instance in memory",
        checks,
    )


def ready_prepare_tasks(server: Server, count_: int) -> list[str]:
    client = server.client()
    for _ in range(count_):
        client.call("POST", "/api/v1/instances", 201, {"process_id": PROCESS_ID})
    guids, cursor = [], f"/api/v1/tasks?page_size=100&process_id={PROCESS_ID}"
    page = 1
    while len(guids) < count_:
        reply = client.call("GET", f"{cursor}&page={page}", 200)
        if not reply["items"]:
            break
        guids += [t["id"] for t in reply["items"] if t["bpmn_id"] == "prepare"]
        page += 1
    client.close()
    require(len(guids) >= count_, f"only {len(guids)} prepare tasks are ready")
    return guids[:count_]


def complete_all(server: Server, guids: list[str], clients: int) -> float:
    """Completions per second with `clients` threads sharing the task list."""
    shares = [guids[n::clients] for n in range(clients)]

    def work(number: int) -> None:
        client = server.client()
        for guid in shares[number]:
            body = {"data": TASK_DATA["prepare"]}
            client.call("POST", f"/api/v1/tasks/{guid}/complete", 200, body)
        client.close()

    return len(guids) / in_parallel(clients, work)


def completion_throughput(server: Server, url: str, label: str, tasks: int) -> Figure:
    with database(url) as session:
        before = completions(session)
    single = ready_prepare_tasks(server, tasks // 2)
    one_client = complete_all(server, single, 1)
    many = ready_prepare_tasks(server, tasks)
    eight = complete_all(server, many, CLIENTS)
    with database(url) as session:
        after = completions(session)
    done = after["task_completed_events"] - before["task_completed_events"]
    require(done == len(single) + len(many), f"{done} completions recorded")
    require(
        after["tasks_completed"] - before["tasks_completed"] == done,
        "a completion is missing from the task table",
    )
    return Figure(
        f"task completions per second, {CLIENTS} concurrent clients",
        label,
        eight,
        "/s",
        one_client,
        "one client",
        {"completions": done},
    )


def signed_delivery(secret: str, number: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"summary": f"delivery {number}"}).encode()
    headers = signatures.headers(secret, int(time.time()), body)
    headers["Idempotency-Key"] = f"bench-{uuid.uuid4()}"
    return body, headers


def webhook_intake(server: Server, url: str, label: str, deliveries: int) -> Figure:
    per_client = deliveries // CLIENTS
    acknowledged: list[int] = []

    def send(number: int) -> None:
        client = server.client()
        for n in range(per_client):
            body, headers = signed_delivery(server.secret, number * per_client + n)
            reply = client.call("POST", f"/webhooks/{ENDPOINT}", 202, body, headers)
            acknowledged.append(reply["delivery_id"])
        client.close()

    def start(number: int) -> None:
        client = server.client()
        for n in range(per_client):
            body = {"process_id": PROCESS_ID, "data": {"summary": f"api {n}"}}
            client.call("POST", "/api/v1/instances", 201, body)
        client.close()

    with database(url) as session:
        instances_before = count(session, Instance)
    intake_rate = CLIENTS * per_client / in_parallel(CLIENTS, send)
    api_rate = CLIENTS * per_client / in_parallel(CLIENTS, start)
    with database(url) as session:
        stored = count(session, WebhookDelivery, WebhookDelivery.id.in_(acknowledged))
        processed = count(
            session,
            WebhookDelivery,
            WebhookDelivery.id.in_(acknowledged),
            WebhookDelivery.instance_id.is_not(None),
        )
        started = count(session, Instance) - instances_before
    total = CLIENTS * per_client
    require(len(set(acknowledged)) == total, "a delivery id was answered twice")
    require(stored == total, f"{stored} of {total} acknowledged deliveries stored")
    require(processed == total, f"{processed} of {total} deliveries started one")
    require(started == 2 * total, f"{started} instances for {2 * total} starts")
    return Figure(
        f"signed webhook deliveries per second, {CLIENTS} senders",
        label,
        intake_rate,
        "/s",
        api_rate,
        "the same starts through the API",
        {"acknowledged": total, "stored": stored, "started_instances": processed},
    )


def add_background_instances(url: str, count_: int) -> None:
    """Completed instances the worker never loads, copied from a real one."""
    app = build_app(url)
    with app.app_context():
        template = db.session.scalars(
            sa.select(Instance).where(Instance.status == COMPLETED).limit(1)
        ).one()
        common = {
            "definition_version_id": template.definition_version_id,
            "bpmn_process_id": template.bpmn_process_id,
            "status": COMPLETED,
            "state": template.state,
            "state_format": template.state_format,
            "version": template.version,
            "created_at": template.created_at,
            "updated_at": template.updated_at,
        }
        rows = [{"id": str(uuid.uuid4()), **common} for _ in range(count_)]
        insert_chunked(Instance.__table__, rows)
        db.engine.dispose()
    app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()


def worker_memory(url: str, label: str, token: str, secret: str, runs: int) -> Figure:
    with database(url) as session:
        seed_done = count(session, Instance, Instance.status == COMPLETED) > 0
    require(seed_done, "no completed instance to copy")
    add_background_instances(url, BACKGROUND_INSTANCES)
    with served(url, 1, token, secret) as server:
        (worker,) = server.worker_pids()
        client = server.client()
        for _ in range(100):
            client.run_instance()
        warm = rss_kib(worker)
        samples = []
        for done in range(1, runs + 1):
            client.run_instance()
            if done % 250 == 0:
                client.call("GET", "/api/v1/instances?page_size=50", 200)
                samples.append(rss_kib(worker))
                if done % 5000 == 0:
                    print(
                        f"  {done} instances: {samples[-1] / 1024:.1f} MiB", flush=True
                    )
        client.close()
        after = rss_kib(worker)
    with database(url) as session:
        total = count(session, Instance)
    require(total >= BACKGROUND_INSTANCES + runs, f"only {total} instances stored")
    return Figure(
        f"web worker resident memory after {runs} instances, {total:,} stored",
        label,
        after / 1024,
        "MiB",
        warm / 1024,
        "the same worker after 100 warm-up instances",
        {
            "instances_in_database": total,
            "rss_mib_every_250": [round(s / 1024, 1) for s in samples],
        },
    )


# Running ------------------------------------------------------------------------


def measure(url: str, label: str, args: argparse.Namespace) -> list[Figure]:
    print(f"{label}: preparing", file=sys.stderr)
    token, secret = prepare(url)
    figures = []
    with served(url, args.workers, token, secret) as server:
        if args.memory_only:
            server.client().run_instance()  # the state the stored instances copy
        else:
            figures.append(whole_instance(server, url, label, args.instances))
            figures.append(completion_throughput(server, url, label, args.tasks))
            figures.append(webhook_intake(server, url, label, args.deliveries))
    figures.append(worker_memory(url, label, token, secret, args.memory_instances))
    return figures


def table(figures: list[Figure]) -> list[dict[str, Any]]:
    return [
        {
            "benchmark": figure.name,
            "database": figure.database,
            "service": round(figure.value, 3),
            "reference": round(figure.reference, 3),
            "reference_is": figure.reference_label,
            "unit": figure.unit,
            "ratio": round(figure.ratio, 3),
            "checks": figure.checks,
        }
        for figure in figures
    ]


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'figure':<66} {'database':<11} {'service':>10} {'reference':>10} ratio")
    for row in rows:
        print(
            f"{row['benchmark']:<66} {row['database']:<11} "
            f"{row['service']:>10.2f} {row['reference']:>10.2f} "
            f"{row['ratio']:>5.2f} {row['unit']}"
        )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=320)
    parser.add_argument("--deliveries", type=int, default=320)
    parser.add_argument("--memory-instances", type=int, default=1000)
    parser.add_argument("--postgres", help="a PostgreSQL URL this run may empty")
    parser.add_argument(
        "--memory-only",
        action="store_true",
        help="only the memory figure (for long runs), written to http_memory.json",
    )
    return parser.parse_args()


def main() -> int:
    args = arguments()
    figures = []
    with tempfile.TemporaryDirectory() as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        figures += measure(sqlite_url, "SQLite", args)
    if args.postgres:
        ensure_postgres_database(args.postgres)
        figures += measure(args.postgres, "PostgreSQL", args)
    rows = table(figures)
    print_table(rows)
    document = environment() | {"workers": args.workers, "results": rows}
    results = RESULTS.with_name("http_memory.json") if args.memory_only else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
