"""The GDPR workflow service: create_app builds it; importing does nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, get_debug_flag, run_command
from werkzeug.serving import is_running_from_reloader

from app import config, database, errors
from app.engine import Engine, OperatorRegistry
from app.engine.sandbox import Sandbox, SandboxLimits
from app.extensions import db, migrate


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; `test_config` overrides the environment's settings."""
    app = Flask(__name__, instance_relative_config=True)
    settings = test_config or {}
    app.config.from_mapping(
        config.load(Path(app.instance_path), keyed="SECRET_KEY" in settings)
    )
    app.config.update(settings)

    from app import logs
    from app.services.deadlines import check_settings

    check_settings(app.config)
    logs.configure(app)
    db.init_app(app)
    database.configure(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    errors.init_app(app)
    _listen_for_transactions()
    app.extensions["gdpr.engine"] = _engine(app)

    from app import api, cli, web

    api.init_app(app)
    web.init_app(app)
    cli.register(app)
    _register_operators(app)
    if app.config["SCHEDULER_ENABLED"] and _serves_here():
        _start_scheduler(app)
    return app


def _listen_for_transactions() -> None:
    from sqlalchemy import event

    from app.services import audit

    if not event.contains(db.session, "after_transaction_end", audit.forget_head):
        event.listen(db.session, "after_transaction_end", audit.forget_head)


def _register_operators(app: Flask) -> None:
    from app.services import (
        breaches,
        consent,
        deadlines,
        dpia,
        letters,
        request_answers,
        retention,
        subject_operators,
        subject_requests,
    )

    registry = app.extensions["gdpr.engine"].operators
    for name, operator in {
        **breaches.OPERATORS,
        **consent.OPERATORS,
        **deadlines.OPERATORS,
        **dpia.OPERATORS,
        **letters.OPERATORS,
        **retention.OPERATORS,
        **subject_operators.OPERATORS,
        **subject_requests.OPERATORS,
        **request_answers.OPERATORS,
    }.items():
        registry.register(name, operator)
    for name, operator in {
        **breaches.DATA_OPERATORS,
        **dpia.DATA_OPERATORS,
        **subject_requests.DATA_OPERATORS,
    }.items():
        registry.register(name, operator, reads_data=True)


def _serves_here() -> bool:
    """Whether this process serves the app, the one place its scheduler belongs.

    Under the `flask` command only `run` serves, and with the reloader only the
    child it spawns (WERKZEUG_RUN_MAIN); `db upgrade`, `scheduler` and the rest
    never start one here. Outside it (gunicorn, a script) the setting decides.
    """
    context = click.get_current_context(silent=True)
    if context is None or not isinstance(context.find_root().command, FlaskGroup):
        return True
    if context.command is not run_command:
        return False
    reload = context.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or is_running_from_reloader()


def _start_scheduler(app: Flask) -> None:
    from app.services import scheduler

    scheduler.start_once(app)


def _engine(app: Flask) -> Engine:
    limits = SandboxLimits(
        timeout_seconds=app.config["SANDBOX_TIMEOUT_SECONDS"],
        memory_bytes=app.config["SANDBOX_MEMORY_MB"] * 1024**2,
        workers=app.config["SANDBOX_WORKERS"],
    )
    return Engine(Sandbox(limits), OperatorRegistry())


logging.getLogger(__name__).addHandler(logging.NullHandler())
