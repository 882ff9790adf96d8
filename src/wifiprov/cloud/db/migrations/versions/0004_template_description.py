"""A template's description (what the product is, for people; firmware never sees it).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.add_column(
            sa.Column("description", sa.String(500), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("description")
