"""The GDPR workflow service: create_app builds it; importing does nothing."""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask

from app import config, database, errors
from app.engine import Engine, OperatorRegistry
from app.engine.sandbox import Sandbox, SandboxLimits
from app.extensions import db, migrate


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app; `test_config` overrides the environment's settings."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config.load(Path(app.instance_path)))
    if test_config:
        app.config.update(test_config)

    from app import logs

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
    if app.config["SCHEDULER_ENABLED"] and not _reloader_parent(app):
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


def _reloader_parent(app: Flask) -> bool:
    # Under `flask run --debug` the reloader imports the app twice; only the
    # child that serves (WERKZEUG_RUN_MAIN) may run the scheduler.
    return app.debug and os.environ.get("WERKZEUG_RUN_MAIN") != "true"


def _start_scheduler(app: Flask) -> None:
    from app.services.scheduler import DeadlineScheduler

    scheduler = DeadlineScheduler(app, app.config["SCHEDULER_POLL_SECONDS"])
    scheduler.start()
    app.extensions["gdpr.scheduler"] = scheduler
    atexit.register(scheduler.shutdown)


def _engine(app: Flask) -> Engine:
    limits = SandboxLimits(
        timeout_seconds=app.config["SANDBOX_TIMEOUT_SECONDS"],
        memory_bytes=app.config["SANDBOX_MEMORY_MB"] * 1024**2,
        workers=app.config["SANDBOX_WORKERS"],
    )
    return Engine(Sandbox(limits), OperatorRegistry())


logging.getLogger(__name__).addHandler(logging.NullHandler())
