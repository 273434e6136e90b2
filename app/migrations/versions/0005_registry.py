"""personal-data registry: purposes, systems, entities, fields

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "registry_purposes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("legal_basis", sa.String(length=30), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_purposes")),
        sa.UniqueConstraint("key", name=op.f("uq_registry_purposes_key")),
    )
    op.create_table(
        "registry_systems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("agreement_status", sa.String(length=10), nullable=False),
        sa.Column("agreement_signed_on", sa.Date(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_systems")),
        sa.UniqueConstraint("key", name=op.f("uq_registry_systems_key")),
    )
    op.create_table(
        "registry_entities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("system_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subject_category", sa.String(length=100), nullable=False),
        sa.Column("subject_key", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["system_id"],
            ["registry_systems.id"],
            name=op.f("fk_registry_entities_system_id_registry_systems"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_entities")),
        sa.UniqueConstraint(
            "system_id", "key", name=op.f("uq_registry_entities_system_id_key")
        ),
    )
    op.create_table(
        "registry_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=60), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("data_category", sa.String(length=255), nullable=False),
        sa.Column("purposes", sa.JSON(), nullable=False),
        sa.Column("legal_basis", sa.String(length=30), nullable=False),
        sa.Column("art9_condition", sa.String(length=40), nullable=True),
        sa.Column("special_category", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.Column("retention", sa.JSON(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("automated_decision", sa.Boolean(), nullable=False),
        sa.Column("automated_decision_logic", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["registry_entities.id"],
            name=op.f("fk_registry_fields_entity_id_registry_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_fields")),
        sa.UniqueConstraint(
            "entity_id", "key", name=op.f("uq_registry_fields_entity_id_key")
        ),
    )
    with op.batch_alter_table("registry_fields", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_fields_data_category"),
            ["data_category"],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table("registry_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_registry_fields_data_category"))

    op.drop_table("registry_fields")
    op.drop_table("registry_entities")
    op.drop_table("registry_systems")
    op.drop_table("registry_purposes")
