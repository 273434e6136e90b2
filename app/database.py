"""Per-dialect connection set-up: SQLite gets WAL and one writer at a time.

On PostgreSQL a request whose transaction lost a deadlock (or a serialization
check) is run again from the start, as PostgreSQL asks of such transactions.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from flask import Flask, g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from app.extensions import db

logger = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# deadlock_detected and serialization_failure: the transaction was rolled back
# whole and succeeds if run again.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})
REQUEST_ATTEMPTS = 4


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite so BEGIN is ours to issue.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A change takes the write lock up front (IMMEDIATE): the embedded default has
    # one writer at a time, so a task completed twice waits and then sees 409.
    # Reads begin deferred and, in WAL mode, never wait for a writer.
    connection.exec_driver_sql("BEGIN" if _reading() else "BEGIN IMMEDIATE")


def _reading() -> bool:
    if not has_request_context():
        return False
    return request.method in READ_METHODS and not g.get("writes", False)


def will_write() -> None:
    """Mark this request as writing, for a GET that must record something."""
    g.writes = True


def is_transient(error: BaseException) -> bool:
    """A deadlock victim or serialization failure: nothing was kept; try again."""
    orig = getattr(error, "orig", None) if isinstance(error, DBAPIError) else None
    return getattr(orig, "sqlstate", None) in TRANSIENT_SQLSTATES


def _retry_transient(app: Flask) -> None:
    """Run a request's handler again when its transaction was a deadlock victim."""
    dispatch = app.dispatch_request

    def dispatch_request() -> Any:
        for attempt in range(1, REQUEST_ATTEMPTS + 1):
            try:
                return dispatch()
            except DBAPIError as error:
                if attempt == REQUEST_ATTEMPTS or not is_transient(error):
                    raise
                db.session.rollback()
                logger.warning(
                    "%s %s: transaction rolled back (%s), attempt %s of %s",
                    request.method,
                    request.path,
                    type(error.orig).__name__,
                    attempt + 1,
                    REQUEST_ATTEMPTS,
                )
                # A little jitter, so that the two sides do not meet again.
                time.sleep(random.uniform(0, 0.05 * attempt))
        raise AssertionError("unreachable")

    app.dispatch_request = dispatch_request  # type: ignore[method-assign]


def configure(app: Flask) -> None:
    _retry_transient(app)
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"
