"""Tables, the database handle and migrations (SQLAlchemy Core + Alembic; SQLite or PostgreSQL)."""

from wifiprov.cloud.db.database import Database, DatabaseUnavailable, inserted_id

__all__ = ["Database", "DatabaseUnavailable", "inserted_id"]
