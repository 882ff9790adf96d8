"""Named datastreams on templates, bound to virtual pins (Blynk's MQTT API addresses by name).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datastreams",
        sa.Column("template_id", sa.String(32), sa.ForeignKey("templates.id"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("pin", sa.Integer, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("min", sa.Float),
        sa.Column("max", sa.Float),
        sa.Column("unit", sa.String(16), nullable=False, server_default=""),
        sa.UniqueConstraint("template_id", "pin", name="uq_datastreams_template_pin"),
    )


def downgrade() -> None:
    op.drop_table("datastreams")
