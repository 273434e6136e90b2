"""What the service adds to bare SpiffWorkflow, for one two-user-task process.

The bundled two-step review runs to its end on the bare engine (the reference),
on the bare engine with its state serialized and loaded after every step (stock
JSON with the spec, and the service's own state-only format), on the bare engine
with the service's sandbox, and through the service's API on a fresh SQLite file
(and PostgreSQL when asked). Prints the median time per instance and writes
bench/results/engine_overhead.json.

    .venv/bin/python bench/engine_overhead.py [--instances 200] [--rounds 5]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench] [--profile]

--postgres drops every table of that database first. --profile writes no results:
it times each kind of request with its SQL statement count, then runs the service
under cProfile and shows where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import os
import platform
import pstats
import re
import sqlite3
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import flask_migrate
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.util.task import TaskState

from app import create_app
from app.engine import OperatorRegistry, serialization
from app.engine.sandbox import Sandbox, SandboxLimits
from app.engine.scripting import SandboxEnvironment, SandboxScriptEngine
from app.extensions import db
from app.models import AuditEvent, Instance
from app.models.instances import COMPLETED
from app.services import audit, definitions, users

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "engine_overhead.json"
PROCESS_ID = "two_step_review"
BPMN_FILE = ROOT / "workflows" / "two_step_review.bpmn"
TASK_DATA = {
    "prepare": {"summary": "CCTV at the entrance"},
    "approve": {"approved": True},
}
# The review loops back on a rejection; approving always ends it in two tasks.
MAX_STEPS = 4
UUID_PATTERN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
AIM_RATIO = 3.0
PACKAGES = (
    "spiffworkflow",
    "flask",
    "werkzeug",
    "sqlalchemy",
    "flask-sqlalchemy",
    "marshmallow",
    "flask-smorest",
    "restrictedpython",
    "jsonschema",
    "psycopg",
)

Workflow = Any  # SpiffWorkflow is untyped
Between = Callable[[Workflow], Workflow]
OpenRunner = Callable[[], AbstractContextManager["Runner"]]


class BenchError(Exception):
    """A variant did not do what it was timed for; its figures are not printed."""


@dataclass(frozen=True)
class Specs:
    spec: Any
    subprocess_specs: dict[str, Any]


@dataclass
class Runner:
    """One variant: run a whole instance (True if it completed), then check it."""

    run_one: Callable[[], bool]
    check: Callable[[int], dict[str, Any]] = lambda runs: {"completed": runs}


@dataclass
class Result:
    variant: str
    rounds_ms: list[float]
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def ms(self) -> float:
        return statistics.median(self.rounds_ms)


# The bare engine -----------------------------------------------------------------


def parse_specs() -> Specs:
    """The review parsed once, with the spiff parser and its schema validator."""
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_file(str(BPMN_FILE))
    return Specs(parser.get_spec(PROCESS_ID), parser.get_subprocess_specs(PROCESS_ID))


def run_bare(specs: Specs, engine: PythonScriptEngine, between: Between) -> bool:
    """Start an instance and complete its human tasks; `between` runs after steps."""
    workflow = BpmnWorkflow(specs.spec, specs.subprocess_specs, script_engine=engine)
    workflow.do_engine_steps()
    workflow = between(workflow)
    for _ in range(MAX_STEPS):
        ready = workflow.get_tasks(state=TaskState.READY, manual=True)
        if not ready:
            break
        for task in ready:
            task.set_data(**TASK_DATA[task.task_spec.bpmn_id])
            task.run()
        workflow.do_engine_steps()
        workflow = between(workflow)
    return bool(workflow.completed)


def in_memory(workflow: Workflow) -> Workflow:
    return workflow


def json_round_trip(engine: PythonScriptEngine) -> Between:
    """Serialize to JSON and back with the stock spiff serializer (spec included)."""
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))

    def between(workflow: Workflow) -> Workflow:
        loaded = serializer.deserialize_json(serializer.serialize_json(workflow))
        loaded.script_engine = engine  # never serialized
        return loaded

    return between


def state_only_round_trip(specs: Specs, engine: PythonScriptEngine) -> Between:
    """The service's own state format: no spec, zlib level 1, spec re-attached."""
    version = serialization.serializer_version()

    def between(workflow: Workflow) -> Workflow:
        state = serialization.dump_state(workflow)
        loaded = serialization.load_state(
            state, specs.spec, specs.subprocess_specs, version, ""
        )
        loaded.script_engine = engine
        return loaded

    return between


@contextmanager
def bare(specs: Specs, round_trip: str | None = None) -> Iterator[Runner]:
    engine = PythonScriptEngine()
    between = in_memory
    if round_trip == "json":
        between = json_round_trip(engine)
    elif round_trip == "state-only":
        between = state_only_round_trip(specs, engine)
    yield Runner(lambda: run_bare(specs, engine, between))


@contextmanager
def bare_sandboxed(specs: Specs) -> Iterator[Runner]:
    """The bare engine, but scripts and conditions go to the service's sandbox."""
    sandbox = Sandbox(SandboxLimits())
    engine = SandboxScriptEngine(SandboxEnvironment(sandbox, OperatorRegistry()))
    try:
        yield Runner(lambda: run_bare(specs, engine, in_memory))
    finally:
        sandbox.close()


# The service through its API ----------------------------------------------------


@dataclass
class RequestStats:
    seconds: list[float] = field(default_factory=list)
    statements: list[int] = field(default_factory=list)


@dataclass
class Service:
    """The app with a deployed review and one user who works both lanes."""

    app: Flask
    client: FlaskClient
    headers: dict[str, str]
    # Per route, while someone wants them: seconds and SQL statements per request.
    requests: dict[str, RequestStats] | None = None
    statements: int = 0

    def call(self, method: str, url: str, expected: int, **kwargs: Any) -> Any:
        start, statements = time.perf_counter(), self.statements
        reply = self.client.open(url, method=method, headers=self.headers, **kwargs)
        if self.requests is not None:
            stats = self.requests[route(method, url)]
            stats.seconds.append(time.perf_counter() - start)
            stats.statements.append(self.statements - statements)
        if reply.status_code != expected:
            raise BenchError(f"{method} {url}: {reply.status_code} {reply.get_json()}")
        return reply.get_json()

    def run_instance(self) -> bool:
        def call(method: str, url: str, expected: int, body: Any = None) -> Any:
            return self.call(method, url, expected, json=body)

        return run_review(call) == COMPLETED

    def count_statements(self) -> None:
        """From now on, count every SQL statement sent to the database."""

        def count(*_args: Any) -> None:
            self.statements += 1

        with self.app.app_context():
            sa.event.listen(db.engine, "before_cursor_execute", count)

    def runner(self) -> Runner:
        return Runner(self.run_instance, lambda runs: check_service(self.app, runs))


def run_review(call: Callable[..., Any]) -> str:
    """Start, list, complete, list, complete: five requests; the final status.

    `call(method, url, expected_status, json_body=None)` makes one request.
    """
    body = {"process_id": PROCESS_ID, "business_key": "bench"}
    instance = call("POST", "/api/v1/instances", 201, body)
    for _ in range(MAX_STEPS):
        page = call("GET", f"/api/v1/tasks?instance_id={instance['id']}", 200)
        if not page["items"]:
            break
        task = page["items"][0]
        data = {"data": TASK_DATA[task["bpmn_id"]]}
        url = f"/api/v1/tasks/{task['id']}/complete"
        instance = call("POST", url, 200, data)["instance"]
        if instance["status"] != "running":
            break
    return instance["status"]


def route(method: str, url: str) -> str:
    return f"{method} {UUID_PATTERN.sub('ID', url.partition('?')[0])}"


def build_app(database_url: str) -> Flask:
    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SECRET_KEY": "bench-only-secret",
            "WORKFLOWS_DIR": str(ROOT / "workflows"),
            "FORMS_DIR": str(ROOT / "forms"),
        }
    )


def prepare_database() -> str:
    """Empty and migrate the database, deploy the bundled files; a user's token."""
    db.drop_all()
    db.session.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()
    flask_migrate.upgrade()
    definitions.deploy_directory(ROOT / "workflows", ROOT / "forms")
    user = users.create_user("bench", ["privacy_officer", "dpo"])
    token = users.create_token(user, "bench")
    db.session.commit()
    return token


def silence_app_log() -> None:
    # The INFO lines are still made and handled, but only warnings reach stderr.
    for handler in logging.getLogger("app").handlers:
        handler.setLevel(logging.WARNING)


def check_service(app: Flask, runs: int) -> dict[str, Any]:
    """Completed instances and task completions in the database match the runs."""
    with app.app_context():
        counts = {
            "instances": _count(sa.select(sa.func.count()).select_from(Instance)),
            "completed": _count(
                sa.select(sa.func.count()).where(Instance.status == COMPLETED)
            ),
            "task_completed_events": _count(
                sa.select(sa.func.count()).where(AuditEvent.action == "task.completed")
            ),
        }
        chain = audit.verify()
        counts["database"] = _database_name()
    expected = {"instances": runs, "completed": runs, "task_completed_events": 2 * runs}
    for name, value in expected.items():
        if counts[name] != value:
            raise BenchError(f"service: {name} is {counts[name]}, expected {value}")
    if not chain.ok:
        raise BenchError(f"service: audit chain broken at event {chain.first_bad_id}")
    return counts | {"audit_events_verified": chain.checked}


def _count(query: Any) -> int:
    return int(db.session.scalar(query) or 0)


def _database_name() -> str:
    dialect = db.engine.dialect
    version = ".".join(str(part) for part in dialect.server_version_info or ())
    return f"{dialect.name} {version}".strip()


@contextmanager
def service(database_url: str) -> Iterator[Service]:
    """The service on a freshly emptied and migrated database."""
    app = build_app(database_url)
    silence_app_log()
    try:
        with app.app_context():
            token = prepare_database()
        headers = {"Authorization": f"Bearer {token}"}
        yield Service(app, app.test_client(), headers)
    finally:
        app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
        with app.app_context():
            db.engine.dispose()


@contextmanager
def service_runner(database_url: str) -> Iterator[Runner]:
    with service(database_url) as bench:
        yield bench.runner()


# Timing -------------------------------------------------------------------------


def run_checked(name: str, runner: Runner, count: int) -> None:
    completed = sum(1 for _ in range(count) if runner.run_one())
    if completed != count:
        raise BenchError(f"{name}: {completed} of {count} instances completed")


def measure(name: str, runner: Runner, args: argparse.Namespace) -> Result:
    """Warm up, then time `rounds` batches; each figure is ms per instance."""
    run_checked(name, runner, args.warmup)
    rounds = []
    for _ in range(args.rounds):
        gc.collect()
        start = time.perf_counter()
        run_checked(name, runner, args.instances)
        rounds.append((time.perf_counter() - start) * 1000 / args.instances)
    runs = args.warmup + args.rounds * args.instances
    return Result(name, rounds, runner.check(runs))


def variants(
    specs: Specs, sqlite_url: str, postgres_url: str | None
) -> Iterator[tuple[str, OpenRunner]]:
    yield "bare engine", lambda: bare(specs)
    yield "bare + JSON round trip", lambda: bare(specs, "json")
    yield "bare + state-only round trip", lambda: bare(specs, "state-only")
    yield "bare + sandboxed scripts", lambda: bare_sandboxed(specs)
    yield "service API, SQLite file", lambda: service_runner(sqlite_url)
    if postgres_url:
        yield "service API, PostgreSQL", lambda: service_runner(postgres_url)


def run_all(args: argparse.Namespace, sqlite_url: str) -> list[Result]:
    results = []
    for name, open_variant in variants(parse_specs(), sqlite_url, args.postgres):
        with open_variant() as runner:
            results.append(measure(name, runner, args))
        print(f"  {name}: {results[-1].ms:.3f} ms", file=sys.stderr, flush=True)
    return results


def print_table(results: list[Result]) -> None:
    reference = results[0].ms
    print(f"\n{'variant':<32} {'ms/instance':>12} {'x bare':>8}")
    for result in results:
        print(f"{result.variant:<32} {result.ms:>12.3f} {result.ms / reference:>8.2f}")
    print(f"(median of rounds; the aim is at most {AIM_RATIO:g}x the bare engine)")


# Results file -------------------------------------------------------------------


def git(*command: str) -> str | None:
    try:
        reply = subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return reply.stdout.strip()


def git_commit() -> str:
    return git("rev-parse", "--short", "HEAD") or "uncommitted"


def source_changed() -> bool | None:
    """Whether the measured code differs from the commit (None: unknown)."""
    status = git("status", "--porcelain", "--", "app", "workflows", "forms")
    return None if status is None else bool(status)


def environment() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": {name: metadata.version(name) for name in PACKAGES},
        "commit": git_commit(),
        "uncommitted_changes": source_changed(),
    }


def write_results(results: list[Result], args: argparse.Namespace) -> None:
    reference = results[0].ms
    document = environment() | {
        "instances": args.instances,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "aim_max_ratio": AIM_RATIO,
        "results": [
            {
                "variant": result.variant,
                "ms_per_instance": round(result.ms, 4),
                "ratio_to_bare": round(result.ms / reference, 3),
                "rounds_ms": [round(ms, 4) for ms in result.rounds_ms],
                "checks": result.checks,
            }
            for result in results
        ],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    partial = RESULTS.with_suffix(".json.tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n")
    partial.replace(RESULTS)


# Profile ------------------------------------------------------------------------

Func = tuple[str, int, str]
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
NEUTRAL = ""
# First match wins; paths are relative to the project, site-packages or stdlib.
CATEGORIES = (
    ("sandbox", ("app/engine/sandbox/", "app/engine/scripting.py")),
    ("sandbox", ("RestrictedPython/", "std:subprocess.py", "std:selectors.py")),
    ("serialization", ("app/engine/serialization.py", "SpiffWorkflow/serializer/")),
    ("serialization", ("SpiffWorkflow/bpmn/serializer/",)),
    ("serialization", ("SpiffWorkflow/spiff/serializer/",)),
    ("SpiffWorkflow", ("SpiffWorkflow/", "app/engine/", "lxml/")),
    ("SQLAlchemy", ("sqlalchemy/", "flask_sqlalchemy/", "alembic/")),
    ("database driver", ("std:sqlite3/", "psycopg/", "psycopg_binary/")),
    ("JSON/marshmallow", ("std:json/", "flask/json/", "marshmallow/", "webargs/")),
    ("JSON/marshmallow", ("flask_smorest/", "apispec/", "jsonschema/")),
    ("JSON/marshmallow", ("referencing/", "rpds/", "jsonschema_specifications/")),
    ("Flask/werkzeug", ("flask/", "werkzeug/", "blinker/", "itsdangerous/")),
    ("Flask/werkzeug", ("markupsafe/", "std:http/", "std:urllib/")),
    ("service code", ("app/",)),
    ("benchmark driver", ("bench/",)),
)


def module_path(filename: str) -> str:
    """Where a profiled function lives, short; '' for built-ins."""
    if filename == "~":
        return ""
    if "site-packages/" in filename:
        return filename.rsplit("site-packages/", 1)[1]
    path = Path(filename)
    if path.is_relative_to(ROOT):
        return str(path.relative_to(ROOT))
    if path.is_relative_to(STDLIB):
        return "std:" + str(path.relative_to(STDLIB))
    return filename


def own_category(func: Func) -> str:
    """The function's own category; NEUTRAL (built-ins, most stdlib) follows callers."""
    path = module_path(func[0])
    if path == "" and ("sqlite3." in func[2] or "psycopg" in func[2]):
        return "database driver"
    for category, prefixes in CATEGORIES:
        if path.startswith(prefixes):
            return category
    return NEUTRAL if path == "" or path.startswith(("std:", "<")) else "other"


class Attribution:
    """Self time per category; a neutral function's goes to its callers' share."""

    def __init__(self, stats: dict[Func, Any]) -> None:
        self.stats = stats
        self.memo: dict[Func, dict[str, float]] = {}

    def shares(
        self, func: Func, seen: frozenset[Func] = frozenset()
    ) -> dict[str, float]:
        if func in self.memo:
            return self.memo[func]
        own = own_category(func)
        if own != NEUTRAL:
            return {own: 1.0}
        if func in seen:
            return {"other": 1.0}
        shares = self._from_callers(func, seen | {func})
        self.memo[func] = shares
        return shares

    def _from_callers(self, func: Func, seen: frozenset[Func]) -> dict[str, float]:
        # cProfile records, per caller, the callee's self time spent on its behalf.
        callers = self.stats[func][4]
        weights = {
            caller: edge[2] or edge[3] or edge[0] for caller, edge in callers.items()
        }
        total = sum(weights.values())
        if not total:
            return {"other": 1.0}
        shares: dict[str, float] = defaultdict(float)
        for caller, weight in weights.items():
            for category, part in self.shares(caller, seen).items():
                shares[category] += part * weight / total
        return dict(shares)

    def split(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for func, (_cc, _nc, tt, _ct, _callers) in self.stats.items():
            for category, part in self.shares(func).items():
                totals[category] += tt * part
        return dict(totals)

    def category(self, func: Func) -> str:
        shares = self.shares(func)
        return max(shares, key=shares.__getitem__)


def label(func: Func) -> str:
    path = module_path(func[0])
    return f"{path}:{func[2]}" if path else func[2]


def print_split(attribution: Attribution, instances: int) -> None:
    split = attribution.split()
    total = sum(split.values())
    print("\nself time by category (built-ins and stdlib counted to their callers)")
    for category, seconds in sorted(split.items(), key=lambda item: -item[1]):
        ms = seconds * 1000 / instances
        print(f"  {category:<20} {ms:>8.2f} ms/instance {seconds / total:>6.1%}")
    print(f"  {'total':<20} {total * 1000 / instances:>8.2f} ms/instance")


def print_top(
    attribution: Attribution, funcs: list[Func], instances: int, title: str
) -> None:
    stats = attribution.stats
    groups: dict[str, list[Func]] = defaultdict(list)
    for func in funcs:
        groups[attribution.category(func)].append(func)
    print(f"\n{title}\n  {'cum ms':>8} {'self ms':>8} {'calls':>6}  (per instance)")
    for category, members in groups.items():
        print(f"  [{category}]")
        for func in members:
            _cc, nc, tt, ct, _callers = stats[func]
            per = 1000 / instances
            print(
                f"  {ct * per:>8.2f} {tt * per:>8.3f} {nc / instances:>6.1f}  ", end=""
            )
            print(label(func))


def top_cumulative(
    attribution: Attribution, count: int, prefix: str = ""
) -> list[Func]:
    """The costliest functions under `prefix`, leaving out the benchmark's own."""
    stats = attribution.stats
    funcs = [
        func
        for func in stats
        if module_path(func[0]).startswith(prefix)
        and attribution.category(func) != "benchmark driver"
    ]
    return sorted(funcs, key=lambda func: -stats[func][3])[:count]


def time_requests(bench: Service, instances: int) -> None:
    """Time each request without the profiler, beside a trivial health check."""
    bench.requests = defaultdict(RequestStats)
    bench.count_statements()
    run_checked("service", bench.runner(), instances)
    for _ in range(instances):
        bench.call("GET", "/api/health", 200)
    bench.requests, requests = None, bench.requests
    print(f"\nrequests without the profiler ({instances} instances)")
    print(f"  {'route':<40} {'per inst':>8} {'median ms':>9} {'SQL':>5}")
    for name, stats in requests.items():
        per_instance = len(stats.seconds) / instances
        median_ms = statistics.median(stats.seconds) * 1000
        sql = statistics.median(stats.statements)
        print(f"  {name:<40} {per_instance:>8.1f} {median_ms:>9.3f} {sql:>5g}")


def profile_instances(bench: Service, instances: int) -> Attribution:
    profiler = cProfile.Profile()
    profiler.enable()
    run_checked("service", bench.runner(), instances)
    profiler.disable()
    return Attribution(pstats.Stats(profiler).stats)  # type: ignore[attr-defined]


def profile(args: argparse.Namespace, sqlite_url: str) -> None:
    """Time the service's requests, then profile it: the split and the top calls."""
    with service(args.postgres or sqlite_url) as bench:
        run_checked("service", bench.runner(), args.warmup)
        time_requests(bench, args.instances)
        attribution = profile_instances(bench, args.instances)
        bench.runner().check(args.warmup + 2 * args.instances)
    print(f"\nprofiled {args.instances} instances under cProfile", end=" ")
    print("(it slows call-heavy Python code most)")
    print_split(attribution, args.instances)
    top = top_cumulative(attribution, args.top)
    print_top(attribution, top, args.instances, f"top {args.top} by cumulative time")
    own = top_cumulative(attribution, 15, "app/")
    print_top(attribution, own, args.instances, "the service's own code, top 15")


# Command line -------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200, help="per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20, help="untimed instances")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL")
    parser.add_argument("--profile", action="store_true", help="profile the service")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    args = parser.parse_args()
    if min(args.instances, args.rounds) < 1 or args.warmup < 0:
        parser.error("--instances and --rounds must be positive")
    return args


def main() -> int:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="engine-overhead-") as folder:
        sqlite_url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        if args.profile:
            profile(args, sqlite_url)
            return 0
        results = run_all(args, sqlite_url)
    print_table(results)
    write_results(results, args)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
