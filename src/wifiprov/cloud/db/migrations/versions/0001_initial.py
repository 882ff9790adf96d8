"""Initial schema: accounts, templates, provisioning requests, devices and their data.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, primary_key=True)


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Float, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(254), nullable=False, unique=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        _time("created_at"),
    )
    op.create_table(
        "organizations",
        _id(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("hotspot_prefix", sa.String(20), nullable=False),
        _time("created_at"),
    )
    op.create_table(
        "memberships",
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
    )
    op.create_table(
        "sessions",
        _id(),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_last4", sa.String(4), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
    )
    op.create_table(
        "templates",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("firmware_type", sa.String(64), nullable=False),
        _time("created_at"),
    )
    op.create_index("ix_templates_org_id", "templates", ["org_id"])
    op.create_table(
        "provisioning_requests",
        _id(),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("template_id", sa.String(32), sa.ForeignKey("templates.id"), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_last4", sa.String(4), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("claimed_at", nullable=True),
        sa.Column("device_id", sa.Integer),
    )
    op.create_table(
        "devices",
        _id(),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("template_id", sa.String(32), sa.ForeignKey("templates.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_last4", sa.String(4), nullable=False),
        _time("created_at"),
        sa.Column("created_by", sa.Integer, sa.ForeignKey("users.id")),
        sa.Column("info", sa.Text, nullable=False),
        sa.Column("buffer_in", sa.Integer),
        sa.Column("online_node", sa.String(64)),
        _time("connected_at", nullable=True),
        _time("last_seen", nullable=True),
    )
    op.create_index("ix_devices_org_id", "devices", ["org_id"])
    op.create_table(
        "pin_values",
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("pin", sa.Integer, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        _time("updated_at"),
    )
    op.create_table(
        "pin_properties",
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id"), primary_key=True),
        sa.Column("pin", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "device_events",
        _id(),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        _time("created_at"),
    )
    op.create_index("ix_device_events_device_id", "device_events", ["device_id"])


def downgrade() -> None:
    for table in (
        "device_events",
        "pin_properties",
        "pin_values",
        "devices",
        "provisioning_requests",
        "templates",
        "sessions",
        "memberships",
        "organizations",
        "users",
        "secrets",
    ):
        op.drop_table(table)
