"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-12-03

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "audit_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("instance_id", sa.String(length=36), nullable=True),
        sa.Column("task_guid", sa.String(length=36), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_sha256", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("sha256", name=op.f("uq_audit_events_sha256")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_events_action"), ["action"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_instance_id"), ["instance_id"], unique=False
        )

    op.create_table(
        "process_definitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bpmn_process_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_definitions")),
        sa.UniqueConstraint(
            "bpmn_process_id", name=op.f("uq_process_definitions_bpmn_process_id")
        ),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_tokens_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "definition_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("bpmn_xml", sa.Text(), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("forms", sa.JSON(), nullable=False),
        sa.Column("user_tasks", sa.JSON(), nullable=False),
        sa.Column("deployed_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["process_definitions.id"],
            name=op.f("fk_definition_versions_definition_id_process_definitions"),
        ),
        sa.ForeignKeyConstraint(
            ["deployed_by_id"],
            ["users.id"],
            name=op.f("fk_definition_versions_deployed_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_definition_versions")),
        sa.UniqueConstraint(
            "definition_id",
            "content_sha256",
            name=op.f("uq_definition_versions_definition_id_content_sha256"),
        ),
        sa.UniqueConstraint(
            "definition_id",
            "number",
            name=op.f("uq_definition_versions_definition_id_number"),
        ),
    )
    op.create_table(
        "form_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("schema", sa.JSON(), nullable=False),
        sa.Column("deployed_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployed_by_id"],
            ["users.id"],
            name=op.f("fk_form_versions_deployed_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_versions")),
        sa.UniqueConstraint(
            "name", "content_sha256", name=op.f("uq_form_versions_name_content_sha256")
        ),
    )
    with op.batch_alter_table("form_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_form_versions_name"), ["name"], unique=False
        )

    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("definition_version_id", sa.Integer(), nullable=False),
        sa.Column("bpmn_process_id", sa.String(length=255), nullable=False),
        sa.Column("business_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.Column("state_format", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("started_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["definition_version_id"],
            ["definition_versions.id"],
            name=op.f("fk_instances_definition_version_id_definition_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"],
            ["users.id"],
            name=op.f("fk_instances_started_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_instances_bpmn_process_id"),
            ["bpmn_process_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_instances_business_key"), ["business_key"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_instances_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_instances_definition_version_id"),
            ["definition_version_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_instances_status"), ["status"], unique=False
        )

    op.create_table(
        "human_tasks",
        sa.Column("task_guid", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("bpmn_process_id", sa.String(length=255), nullable=False),
        sa.Column("bpmn_id", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("lane", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("form_name", sa.String(length=120), nullable=True),
        sa.Column("form_version_id", sa.Integer(), nullable=True),
        sa.Column("purpose", sa.String(length=120), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("claimed_by_id", sa.Integer(), nullable=True),
        sa.Column("completed_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["claimed_by_id"],
            ["users.id"],
            name=op.f("fk_human_tasks_claimed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["completed_by_id"],
            ["users.id"],
            name=op.f("fk_human_tasks_completed_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["form_version_id"],
            ["form_versions.id"],
            name=op.f("fk_human_tasks_form_version_id_form_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_human_tasks_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_guid", name=op.f("pk_human_tasks")),
    )
    with op.batch_alter_table("human_tasks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_human_tasks_claimed_by_id"), ["claimed_by_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_human_tasks_instance_id"), ["instance_id"], unique=False
        )
        batch_op.create_index(
            "ix_human_tasks_queue",
            ["role", "status", "due_at", "created_at"],
            unique=False,
        )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("task_guid", sa.String(length=36), nullable=False),
        sa.Column("bpmn_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("correlation_sha256", sa.String(length=64), nullable=True),
        sa.Column("correlations", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_subscriptions_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_subscriptions_correlation_sha256"),
            ["correlation_sha256"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_subscriptions_instance_id"), ["instance_id"], unique=False
        )
        batch_op.create_index(
            "ix_subscriptions_timer", ["kind", "due_at"], unique=False
        )


def downgrade():
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_timer")
        batch_op.drop_index(batch_op.f("ix_subscriptions_instance_id"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_correlation_sha256"))

    op.drop_table("subscriptions")
    with op.batch_alter_table("human_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_human_tasks_queue")
        batch_op.drop_index(batch_op.f("ix_human_tasks_instance_id"))
        batch_op.drop_index(batch_op.f("ix_human_tasks_claimed_by_id"))

    op.drop_table("human_tasks")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_status"))
        batch_op.drop_index(batch_op.f("ix_instances_definition_version_id"))
        batch_op.drop_index(batch_op.f("ix_instances_created_at"))
        batch_op.drop_index(batch_op.f("ix_instances_business_key"))
        batch_op.drop_index(batch_op.f("ix_instances_bpmn_process_id"))

    op.drop_table("instances")
    with op.batch_alter_table("form_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_form_versions_name"))

    op.drop_table("form_versions")
    op.drop_table("definition_versions")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_user_id"))

    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("process_definitions")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_instance_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))

    op.drop_table("audit_events")
