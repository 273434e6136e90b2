"""Alembic environment: migrate the app's database with its own engine."""

from alembic import context
from flask import current_app

from app.extensions import db

config = context.config
target_metadata = db.metadata


def run_offline() -> None:
    context.configure(
        url=db.engine.url.render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    options = {"render_as_batch": True}
    options.update(current_app.extensions["migrate"].configure_args)
    with db.engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, **options
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
