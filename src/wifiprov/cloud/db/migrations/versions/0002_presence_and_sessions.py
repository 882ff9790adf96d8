"""What devices report about themselves, why a claim was refused, and when a session was last used.

- ``devices.reported_template``: the template id the firmware reports (INTERNAL ``tmpl``), kept
  so a device whose firmware template differs from its own is flagged;
- ``devices.meta``: JSON of the device's INTERNAL ``meta`` (Edgent's Hotspot Name, Device UID);
- ``provisioning_requests.refused_reason``: why a device's claim with this token was refused;
- ``sessions.last_used_at``: for the idle lifetime of a session.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("reported_template", sa.String(32)))
        batch.add_column(sa.Column("meta", sa.Text))
    with op.batch_alter_table("provisioning_requests") as batch:
        batch.add_column(sa.Column("refused_reason", sa.String(200)))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_used_at", sa.Float))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("last_used_at")
    with op.batch_alter_table("provisioning_requests") as batch:
        batch.drop_column("refused_reason")
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("meta")
        batch.drop_column("reported_template")
