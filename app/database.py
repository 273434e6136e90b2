"""Per-dialect connection set-up: SQLite gets WAL and one writer at a time."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.extensions import db

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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


def configure(app: Flask) -> None:
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)


def is_sqlite() -> bool:
    return db.engine.dialect.name == "sqlite"
