"""erasure ledger keys: the table, columns and subject HMAC of each entry

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

A replay acts on the table and columns an entry names, and only on a row whose
subject-key value still gives the entry's keyed HMAC. Entries written before
this revision get their table and columns from the catalogue where it still
maps their fields; their subject HMAC cannot be recovered, so a replay reports
them instead of acting on them.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

NEW_COLUMNS = {
    "table_name": sa.String(length=120),
    "column_names": sa.JSON(),
    "subject_column": sa.String(length=120),
    "subject_hmac": sa.String(length=64),
    "erased_hmac": sa.String(length=64),
}

ledger = sa.table(
    "erasure_ledger",
    sa.column("id", sa.Integer()),
    sa.column("system_key", sa.String()),
    sa.column("entity_key", sa.String()),
    sa.column("field_ids", sa.JSON()),
    sa.column("table_name", sa.String()),
    sa.column("column_names", sa.JSON()),
)
systems = sa.table(
    "registry_systems", sa.column("id", sa.Integer()), sa.column("key", sa.String())
)
entities = sa.table(
    "registry_entities",
    sa.column("id", sa.Integer()),
    sa.column("system_id", sa.Integer()),
    sa.column("key", sa.String()),
    sa.column("table_name", sa.String()),
)
fields = sa.table(
    "registry_fields",
    sa.column("entity_id", sa.Integer()),
    sa.column("key", sa.String()),
    sa.column("column_name", sa.String()),
)


def upgrade():
    with op.batch_alter_table("erasure_ledger") as batch:
        for name, kind in NEW_COLUMNS.items():
            batch.add_column(sa.Column(name, kind, nullable=True))
    _fill_from_catalogue(op.get_bind())


def _catalogue(bind):
    """Each catalogued field id to its entity's table and its own column."""
    query = (
        sa.select(
            systems.c.key,
            entities.c.key,
            entities.c.table_name,
            fields.c.key,
            fields.c.column_name,
        )
        .select_from(systems)
        .join(entities, entities.c.system_id == systems.c.id)
        .join(fields, fields.c.entity_id == entities.c.id)
    )
    mapped = {}
    for system, entity, table, key, column in bind.execute(query):
        mapped[f"{system}.{entity}.{key}"] = (table or entity, column or key)
    return mapped


def _fill_from_catalogue(bind):
    mapped = _catalogue(bind)
    rows = bind.execute(sa.select(ledger.c.id, ledger.c.field_ids)).all()
    for entry_id, field_ids in rows:
        found = [mapped[i] for i in field_ids or [] if i in mapped]
        if not found or len(found) != len(field_ids):
            continue
        bind.execute(
            ledger.update()
            .where(ledger.c.id == entry_id)
            .values(table_name=found[0][0], column_names=[c for _, c in found])
        )


def downgrade():
    with op.batch_alter_table("erasure_ledger") as batch:
        for name in reversed(NEW_COLUMNS):
            batch.drop_column(name)
