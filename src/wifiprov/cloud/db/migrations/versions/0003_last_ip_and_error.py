"""Where a device last connected from, and why its last connection ended badly.

- ``devices.last_ip``: the address its last login came from (as the gateway saw it);
- ``devices.last_error``: why the cloud last closed its connection for a fault (heartbeat
  timeout, a frame it could not take ...), in words (kept until the next fault).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("last_ip", sa.String(45)))
        batch.add_column(sa.Column("last_error", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("last_error")
        batch.drop_column("last_ip")
