"""Names of people, organizations, templates and devices up to 200 characters (were 100).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("users", "organizations", "templates", "devices")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "name", existing_type=sa.String(100), type_=sa.String(200), existing_nullable=False
            )


def downgrade() -> None:
    # Names longer than 100 characters are cut to fit the older column.
    for table in TABLES:
        op.execute(sa.text(f"UPDATE {table} SET name = substr(name, 1, 100)"))
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "name", existing_type=sa.String(200), type_=sa.String(100), existing_nullable=False
            )
