"""The service as real processes: gunicorn web workers and scheduler processes.

Each test module gets a database of its own (never the suite's `test` database),
migrated as `flask db upgrade` migrates it, and every process it starts
runs in a process group of its own, killed in teardown whatever happened.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).parent.parent.parent
BIN = Path(sys.executable).parent
START_SECONDS = 60.0

T = TypeVar("T")


def suite_database_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL")


def on_postgresql() -> bool:
    url = suite_database_url()
    return bool(url) and make_url(url).get_backend_name() == "postgresql"


needs_postgresql = pytest.mark.skipif(
    not on_postgresql(),
    reason="needs PostgreSQL in TEST_DATABASE_URL: it tests concurrent writers "
    "and several processes, and SQLite lets one writer in at a time",
)


@contextmanager
def system_database(name: str, folder: Path) -> Iterator[str]:
    """A fresh database beside the test one (`<test>_<name>`), dropped afterwards."""
    if not on_postgresql():
        yield f"sqlite:///{folder / f'{name}.sqlite3'}"
        return
    base = make_url(suite_database_url() or "")
    url = base.set(database=f"{base.database}_{name}")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    _recreate(admin, url.database or "")
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(f'DROP DATABASE IF EXISTS "{url.database}" (FORCE)')
            )
        admin.dispose()


def _recreate(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))


def environment(database_url: str, folder: Path, **extra: str) -> dict[str, str]:
    """What a deployment sets: the database, a secret, where processes live."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "system-test-secret",
        "WORKFLOWS_DIR": str(ROOT / "workflows"),
        "FORMS_DIR": str(ROOT / "forms"),
        "LETTERS_DIR": str(ROOT / "letters"),
        "DEMO_SYSTEMS_URL": f"sqlite:///{folder / 'demo_systems.sqlite3'}",
        "SCHEDULER_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def run(command: list[str], env: dict[str, str], stdin: bytes = b"") -> bytes:
    """Run a command to its end; fail with its output if it fails."""
    done = subprocess.run(
        command, cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=120
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {done.returncode}:\n"
            f"{done.stdout.decode(errors='replace')}"
            f"{done.stderr.decode(errors='replace')}"
        )
    return done.stdout


@dataclass
class Seeded:
    """The callers and processes a fresh database was given."""

    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)


def seed(env: dict[str, str], names: list[str], bpmn_files: dict[str, bytes]) -> Seeded:
    """Migrate; users holding every work role (with tokens); the processes deployed."""
    wanted = {
        "callers": names,
        "bpmn": {name: raw.decode() for name, raw in bpmn_files.items()},
    }
    done = run(
        [sys.executable, "-m", "tests.system.seed"], env, json.dumps(wanted).encode()
    )
    seeded = Seeded()
    for name, (user_id, token) in json.loads(done).items():
        seeded.tokens[name], seeded.user_ids[name] = token, user_id
    return seeded


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """A child in a process group of its own, its output kept in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path):
        self.name, self.command, self.env, self.log = name, command, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the whole group (master, workers, sandboxes) and reap the child."""
        if self.popen is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signum)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        # Workers may outlive the master for a moment; none may outlive the test.
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen = None

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class Web(Process):
    """gunicorn serving create_app() on a free port of 127.0.0.1."""

    def __init__(self, name: str, env: dict[str, str], folder: Path, workers: int):
        self.port = free_port()
        command = [
            str(BIN / "gunicorn"),
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "60",
            "app:create_app()",
        ]
        super().__init__(name, command, env, folder / f"{name}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        super().start()

    def wait_ready(self) -> None:
        wait_for(self._healthy, f"{self.name} to answer /api/health", self)

    def _healthy(self) -> bool:
        if not self.running():
            raise AssertionError(f"{self.name} exited:\n{self.tail()}")
        try:
            return Http(self.url).get("/api/health").status == 200
        except OSError:
            return False


class Scheduler(Process):
    """`flask --app app scheduler`, the deadline scheduler on its own."""

    def __init__(self, name: str, env: dict[str, str], folder: Path):
        command = [str(BIN / "flask"), "--app", "app", "scheduler"]
        super().__init__(name, command, env, folder / f"{name}.log")


def wait_for(
    check: Callable[[], T], what: str, *logs: Process, seconds: float = START_SECONDS
) -> T:
    """Poll until `check` gives something truthy; fail naming `what` after `seconds`."""
    limit = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > limit:
            tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


@dataclass
class Reply:
    status: int
    body: Any


class Http:
    """A small JSON client over urllib: one connection a request, no retries."""

    def __init__(self, base: str, token: str | None = None, timeout: float = 60):
        self.base, self.token, self.timeout = base, token, timeout

    def get(self, path: str) -> Reply:
        return self.send("GET", path)

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None):
        raw = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
        return self.send("POST", path, raw, headers)

    def send(
        self,
        method: str,
        path: str,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base + path, data=raw, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(response.status, _json(response.read()))
        except urllib.error.HTTPError as error:
            with error:
                return Reply(error.code, _json(error.read()))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


class Database:
    """Read the system database directly, to count what the service wrote."""

    def __init__(self, url: str):
        self.engine = create_engine(url)

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            result = connection.execute(text(sql), params)
            return [dict(row._mapping) for row in result]

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(text(sql), params).scalar()

    def task_status(self, instance_id: str, bpmn_id: str) -> str | None:
        return self.scalar(
            "SELECT status FROM human_tasks WHERE instance_id = :i AND bpmn_id = :b",
            i=instance_id,
            b=bpmn_id,
        )

    def close(self) -> None:
        self.engine.dispose()


class Deployment:
    """One database with its web and scheduler processes; `close` ends them all."""

    def __init__(self, database_url: str, folder: Path, **settings: str):
        self.database_url, self.folder = database_url, folder
        self.env = environment(database_url, folder, **settings)
        self.processes: list[Process] = []
        self.db = Database(database_url)

    def web(self, name: str, workers: int = 2) -> Web:
        return self.webs([name], workers)[0]

    def webs(self, names: list[str], workers: int = 2) -> list[Web]:
        """Web processes started side by side, returned once all answer."""
        webs = [Web(name, self.env, self.folder, workers) for name in names]
        self.processes.extend(webs)
        for web in webs:
            web.launch()
        for web in webs:
            web.wait_ready()
        return webs

    def scheduler(self, name: str) -> Scheduler:
        scheduler = Scheduler(name, self.env, self.folder)
        self.processes.append(scheduler)
        scheduler.start()
        return scheduler

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.processes)

    def close(self) -> None:
        for process in self.processes:
            process.kill()
        self.db.close()


@contextmanager
def deployment(
    name: str,
    folder: Path,
    callers: list[str],
    bpmn_files: dict[str, bytes],
    **settings: str,
) -> Iterator[tuple[Deployment, Seeded]]:
    """A migrated, seeded database of its own; every process killed at the end."""
    with system_database(name, folder) as url:
        system = Deployment(url, folder, **settings)
        try:
            seeded = seed(system.env, callers, bpmn_files)
            yield system, seeded
        finally:
            system.close()
