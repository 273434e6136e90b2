"""queue order index: the inbox's whole order, task id included, in the index

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03

A queue page is ordered by due time, creation time and task id. With the task id
in the index, PostgreSQL and SQLite read a page straight from the index and stop
after it, instead of sorting the whole queue (measured by bench/inbox.py).
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

OLD = ["role", "status", "due_at", "created_at"]


def upgrade():
    with op.batch_alter_table("human_tasks") as batch:
        batch.drop_index("ix_human_tasks_queue")
        batch.create_index("ix_human_tasks_queue", [*OLD, "task_guid"])


def downgrade():
    with op.batch_alter_table("human_tasks") as batch:
        batch.drop_index("ix_human_tasks_queue")
        batch.create_index("ix_human_tasks_queue", OLD)
