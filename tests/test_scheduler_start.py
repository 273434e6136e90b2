"""Where the in-process scheduler starts: once, and only in the process that serves."""

from __future__ import annotations

import signal

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import FlaskGroup

from app import create_app
from app.extensions import db
from app.services import scheduler

CHILD = {"WERKZEUG_RUN_MAIN": "true"}


@pytest.fixture
def started(monkeypatch):
    """The schedulers started in this test, counted instead of run."""
    runners: list[scheduler.DeadlineScheduler] = []
    monkeypatch.setattr(scheduler, "_started", [])
    monkeypatch.setattr(
        scheduler.DeadlineScheduler, "start", lambda runner: runners.append(runner)
    )
    monkeypatch.setattr("flask.cli.run_simple", lambda *args, **kwargs: None)
    return runners


@pytest.fixture
def flask_command(app, database_url):
    """Run the `flask` command line in this process, SCHEDULER_ENABLED=1 exported."""
    apps: list[Flask] = []

    def factory() -> Flask:
        made = create_app(
            {
                "SQLALCHEMY_DATABASE_URI": database_url,
                "SECRET_KEY": "test-only-secret",
                "TESTING": True,
            }
        )
        apps.append(made)
        return made

    def run(*args: str, env: dict[str, str] | None = None):
        group = FlaskGroup(create_app=factory, load_dotenv=False)
        environment = {
            "SCHEDULER_ENABLED": "1",
            "FLASK_RUN_FROM_CLI": None,
            "FLASK_DEBUG": None,
            "WERKZEUG_RUN_MAIN": None,
            **(env or {}),
        }
        return CliRunner().invoke(group, list(args), env=environment)

    yield run
    for made in apps:
        _close(made)


def _close(app: Flask) -> None:
    app.extensions["gdpr.engine"].script_engine.environment.sandbox.close()
    with app.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["run"], None, 1),
        (["run", "--reload"], None, 0),
        (["run", "--reload"], CHILD, 1),
        (["--debug", "run"], None, 0),
        (["--debug", "run"], CHILD, 1),
        (["run", "--debug", "--no-reload"], None, 1),
        (["db", "upgrade"], None, 0),
        (["routes"], None, 0),
        (["scheduler", "--once"], None, 0),
    ],
    ids=[
        "run",
        "reloader-parent",
        "reloader-child",
        "debug-parent",
        "debug-child",
        "debug-without-reloader",
        "db-upgrade",
        "routes",
        "scheduler-once",
    ],
)
def test_the_factory_starts_a_scheduler_only_in_the_serving_process(
    started, flask_command, args, env, expected
):
    result = flask_command(*args, env=env)

    assert result.exit_code == 0, result.output
    assert len(started) == expected


@pytest.fixture
def signal_handlers():
    """Put back the test process's own SIGINT and SIGTERM handlers afterwards."""
    saved = {
        signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_the_scheduler_command_runs_exactly_one_scheduler(
    started, flask_command, signal_handlers, monkeypatch
):
    def start_then_terminate(runner):
        started.append(runner)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)

    monkeypatch.setattr(scheduler.DeadlineScheduler, "start", start_then_terminate)

    result = flask_command("scheduler")

    assert result.exit_code == 0, result.output
    assert len(started) == 1


def test_a_second_app_in_one_process_shares_the_running_scheduler(
    started, database_url
):
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": "test-only-secret",
        "SCHEDULER_ENABLED": True,
    }
    first, second = create_app(config), create_app(config)

    assert len(started) == 1
    assert first.extensions["gdpr.scheduler"] is second.extensions["gdpr.scheduler"]
    for made in (first, second):
        _close(made)
