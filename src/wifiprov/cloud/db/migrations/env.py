"""Alembic environment: migrations run on a connection that wifiprov hands over (sync or async)."""

from alembic import context

from wifiprov.cloud.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
