"""SQL connectors: the registry's entities read from their systems' real tables.

Statements are built from reflected tables with bound parameters only; table and
column names come from the catalogue, which allows plain identifiers only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import (
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    and_,
    create_engine,
    or_,
    select,
)
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    NoSuchTableError,
    OperationalError,
)
from sqlalchemy.orm import selectinload

from app.errors import ProblemError, Unprocessable
from app.extensions import db
from app.models import Entity, Field, System
from app.services import restrictions
from app.services.registry_schemas import ENV_PREFIX

logger = logging.getLogger(__name__)

# `env:NAME` reads the environment; these names may come from a setting instead.
SETTINGS = ("DEMO_SYSTEMS_URL",)
# An identity named after a kind of identifier matches every field of its Fides
# category (or a sub-category). Only identifiers locate a subject: a name or an
# address is not unique enough to hand someone's data over on.
IDENTITY_CATEGORIES = {
    "email": "user.contact.email",
    "phone": "user.contact.phone_number",
    "national_id": "user.government_id",
    "unique_id": "user.unique_id",
}

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class ConnectorUnreachable(ProblemError):
    status, code = 503, "connector-unreachable"


class ConnectorFailed(ProblemError):
    status, code = 502, "connector-failed"


@dataclass
class Match:
    """An entity with rows of the subject, known by their primary keys."""

    system: System
    entity: Entity
    row_keys: list[dict[str, Any]]
    matched_on: list[str]

    @property
    def name(self) -> str:
        return f"{self.system.key}.{self.entity.key}"


@dataclass
class Subject:
    """Where a data subject was found: one match per entity holding their rows."""

    identity_keys: list[str]
    matches: list[Match] = field(default_factory=list)

    @property
    def systems(self) -> list[str]:
        return sorted({match.system.key for match in self.matches})

    @property
    def fields(self) -> list[Field]:
        return [row for match in self.matches for row in match.entity.fields]


@dataclass
class Copy:
    """Values read for a subject: system, entity, rows of field id to value."""

    systems: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # The Python type of each field's column, for the export's manifest.
    types: dict[str, type | None] = field(default_factory=dict)
    # Values left out because they are restricted (Art 18): where, and why.
    withheld: list[dict[str, Any]] = field(default_factory=list)

    @property
    def field_ids(self) -> list[str]:
        return sorted(self.types)

    @property
    def row_count(self) -> int:
        return sum(len(rows) for e in self.systems.values() for rows in e.values())


# --- engines ------------------------------------------------------------------------


def resolve_url(system: System) -> str:
    """The system's URL, with `env:NAME` read from the environment or a setting."""
    connection = system.connection or ""
    if not connection.startswith(ENV_PREFIX):
        return connection
    name = connection[len(ENV_PREFIX) :]
    value = current_app.config.get(name) if name in SETTINGS else None
    value = value or os.environ.get(name)
    if not value:
        raise ConnectorUnreachable(
            f"The system '{system.key}' connects through the environment variable "
            f"{name}, which is not set.",
            system=system.key,
        )
    return value


def engine_for(system: System) -> Engine:
    """One engine per URL for the life of the process, checked before each use."""
    url = resolve_url(system)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            try:
                engine = create_engine(url, pool_pre_ping=True)
            except (ArgumentError, NoSuchModuleError, ImportError):
                raise _unreachable(
                    system, "its connection is not a usable URL"
                ) from None
            _engines[url] = engine
    return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def _unreachable(system: System, why: str) -> ConnectorUnreachable:
    return ConnectorUnreachable(
        f"The system '{system.key}' ({system.name}) cannot be reached: {why}. "
        "Nothing was read.",
        system=system.key,
    )


@contextmanager
def connect(system: System) -> Iterator[Connection]:
    """A connection to the system; its failures become problems naming it."""
    try:
        with engine_for(system).connect() as connection:
            yield connection
    except NoSuchTableError as exc:
        raise ConnectorFailed(
            f"The system '{system.key}' has no table '{exc.args[0]}' that the "
            "registry maps.",
            code="connector-mismatch",
            system=system.key,
        ) from None
    except OperationalError as exc:
        # The driver's message may name hosts and users: the log gets its type.
        logger.warning("system %s unreachable: %s", system.key, type(exc.orig))
        raise _unreachable(system, "the database did not answer") from None
    except DBAPIError as exc:
        logger.warning("system %s failed a query: %s", system.key, type(exc.orig))
        raise ConnectorFailed(
            f"The system '{system.key}' failed to answer a query; nothing was read.",
            system=system.key,
        ) from None


def reflect(connection: Connection, system: System, entity: Entity) -> Table:
    """The entity's table as the database describes it, with a primary key."""
    table = Table(entity.table or entity.key, MetaData(), autoload_with=connection)
    if not table.primary_key.columns:
        raise ConnectorFailed(
            f"The table '{table.name}' of system '{system.key}' has no primary key "
            "to name its rows by.",
            code="connector-mismatch",
            system=system.key,
        )
    return table


def column(table: Table, system: System, name: str) -> Any:
    found = table.c.get(name)
    if found is None:
        raise ConnectorFailed(
            f"The table '{table.name}' of system '{system.key}' has no column "
            f"'{name}' that the registry maps.",
            code="connector-mismatch",
            system=system.key,
        )
    return found


def column_name(row: Field) -> str:
    return row.column or row.key


def subject_column(entity: Entity) -> str:
    """The subject key's column: that of the field so named, else the key itself."""
    for row in entity.fields:
        if row.key == entity.subject_key:
            return column_name(row)
    return entity.subject_key


# --- locating a subject -------------------------------------------------------------


def identity_columns(entity: Entity, identities: dict[str, str]) -> dict[str, str]:
    """The columns of the entity each identity is compared with, to identity keys.

    An identity matches the entity's subject key by name; a field by its key when
    the field holds an identifier; and every field of the category an identity
    kind (email, phone, national_id, unique_id) names.
    """
    columns: dict[str, str] = {}
    for key in identities:
        if key == entity.subject_key:
            columns[subject_column(entity)] = key
        category = IDENTITY_CATEGORIES.get(key)
        for row in entity.fields:
            if _matches(row, key, category):
                columns[column_name(row)] = key
    return columns


def _matches(row: Field, key: str, category: str | None) -> bool:
    if category:
        return _under(row.data_category, category)
    return row.key == key and _identifying(row.data_category)


def _under(category: str, parent: str) -> bool:
    return category == parent or category.startswith(parent + ".")


def _identifying(category: str) -> bool:
    return any(_under(category, parent) for parent in IDENTITY_CATEGORIES.values())


def connected_systems() -> list[System]:
    query = (
        select(System)
        .where(System.connection.is_not(None))
        .options(selectinload(System.entities).selectinload(Entity.fields))
        .order_by(System.key)
    )
    return list(db.session.scalars(query))


def locate(identities: dict[str, str]) -> Subject:
    """Every entity of every connected system holding rows of the subject."""
    systems = connected_systems()
    _refuse_unknown(identities, systems)
    subject = Subject(identity_keys=sorted(identities))
    for system in systems:
        subject.matches.extend(_locate_in(system, identities))
    logger.info(
        "subject located in %d entities of %s", len(subject.matches), subject.systems
    )
    return subject


def _refuse_unknown(identities: dict[str, str], systems: list[System]) -> None:
    usable = {
        key
        for system in systems
        for entity in system.entities
        for key in identity_columns(entity, identities).values()
    }
    unknown = sorted(set(identities) - usable)
    if unknown:
        raise Unprocessable(
            f"No connected entity is searched by {', '.join(unknown)}; use a subject "
            f"key or one of {', '.join(IDENTITY_CATEGORIES)}.",
            code="identity-unknown",
            errors=[
                {"field": f"identities.{key}", "message": "Matches no entity."}
                for key in unknown
            ],
        )


def _locate_in(system: System, identities: dict[str, str]) -> list[Match]:
    searched = [
        (entity, identity_columns(entity, identities)) for entity in system.entities
    ]
    searched = [(entity, columns) for entity, columns in searched if columns]
    if not searched:
        return []
    matches = []
    with connect(system) as connection:
        for entity, columns in searched:
            table = reflect(connection, system, entity)
            keys = list(table.primary_key.columns)
            condition = or_(
                *(
                    column(table, system, name) == identities[key]
                    for name, key in columns.items()
                )
            )
            found = connection.execute(select(*keys).where(condition).order_by(*keys))
            row_keys = [dict(row._mapping) for row in found]
            if row_keys:
                matched_on = sorted(set(columns.values()))
                matches.append(Match(system, entity, row_keys, matched_on))
    return matches


# --- reading values -----------------------------------------------------------------


def read(subject: Subject, field_ids: Collection[str] | None = None) -> Copy:
    """The values of the subject's rows, for the fields named (all when None)."""
    copy = Copy()
    by_system: dict[str, list[Match]] = {}
    for match in subject.matches:
        by_system.setdefault(match.system.key, []).append(match)
    for matches in by_system.values():
        with connect(matches[0].system) as connection:
            for match in matches:
                _read_match(connection, match, field_ids, copy)
    return copy


def _read_match(
    connection: Connection,
    match: Match,
    field_ids: Collection[str] | None,
    copy: Copy,
) -> None:
    wanted = [
        row
        for row in match.entity.fields
        if field_ids is None or row.field_id in field_ids
    ]
    if not wanted:
        return
    table = reflect(connection, match.system, match.entity)
    columns = {
        row.field_id: column(table, match.system, column_name(row)) for row in wanted
    }
    keys = list(table.primary_key.columns)
    by_key = or_(
        *(
            and_(*(key == row_key[key.name] for key in keys))
            for row_key in match.row_keys
        )
    )
    query = select(*keys, *columns.values()).where(by_key).order_by(*keys)
    rows = []
    for found in connection.execute(query):
        values = found[len(keys) :]
        row_key = {key.name: value for key, value in zip(keys, found, strict=False)}
        row = dict(zip(columns, values, strict=True))
        _withhold(match, row_key, row, len(rows), copy)
        rows.append(row)
    copy.systems.setdefault(match.system.key, {})[match.entity.key] = rows
    for field_id, found in columns.items():
        copy.types[field_id] = _python_type(found)


def _withhold(
    match: Match, row_key: dict[str, Any], row: dict[str, Any], index: int, copy: Copy
) -> None:
    """Take restricted values out of the row, noting where and on what ground."""
    held = restrictions.by_field(match.system.key, match.entity.key, row_key)
    for field_id in sorted(held.keys() & row.keys()):
        del row[field_id]
        copy.withheld.append(
            {
                "system": match.system.key,
                "entity": match.entity.key,
                "row": index,
                "field": field_id,
                **restrictions.described(held[field_id]),
            }
        )


def _python_type(found: Any) -> type | None:
    try:
        return found.type.python_type
    except NotImplementedError:
        return None


# --- indexes a lookup needs -----------------------------------------------------------


def index_warnings(system: System) -> list[str]:
    """Subject-key and identifier columns without an index, which each lookup scans."""
    if not system.connection:
        return []
    try:
        with connect(system) as connection:
            return [
                warning
                for entity in system.entities
                for warning in _unindexed(connection, system, entity)
            ]
    except ProblemError as problem:
        return [f"The indexes of '{system.key}' were not checked: {problem.detail}"]


def _unindexed(connection: Connection, system: System, entity: Entity) -> list[str]:
    table = reflect(connection, system, entity)
    searched = {subject_column(entity)} | {
        column_name(row) for row in entity.fields if _identifying(row.data_category)
    }
    indexed = _leading_columns(table)
    warnings = []
    for name in sorted(searched - indexed):
        if name not in table.c:
            warnings.append(
                f"The table '{table.name}' of '{system.key}' has no column '{name}' "
                "that the registry maps."
            )
            continue
        logger.warning("system %s: %s.%s has no index", system.key, table.name, name)
        warnings.append(
            f"The column '{name}' of table '{table.name}' ({system.key}.{entity.key}) "
            "has no index, so finding a data subject reads the whole table; "
            "add an index on it."
        )
    return warnings


def _leading_columns(table: Table) -> set[str]:
    """Columns an index, the primary key or a unique constraint starts with."""
    groups = [list(index.columns) for index in table.indexes]
    groups += [
        list(constraint.columns)
        for constraint in table.constraints
        if isinstance(constraint, PrimaryKeyConstraint | UniqueConstraint)
    ]
    return {group[0].name for group in groups if group}
