"""The cloud's tables. Times are UNIX seconds (float) so SQLite and PostgreSQL agree exactly.

Tokens are never stored: ``token_hash`` is a keyed hash (HMAC-SHA256, key in ``secrets``) and
``token_last4`` what the API may show. Migrations in ``migrations/versions`` must match this file.
"""

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# The longest name a person, organization, template or device may have (characters).
NAME_LENGTH = 200
# A datastream's name (Blynk's MQTT topic level ``ds/<name>``).
DATASTREAM_NAME_LENGTH = 64

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", String(128), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("hotspot_prefix", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
)

memberships = Table(
    "memberships",
    metadata,
    Column("org_id", Integer, ForeignKey("organizations.id"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("role", String(16), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_last4", String(4), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    Column("last_used_at", Float),  # for the idle lifetime
)

templates = Table(
    "templates",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("org_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("firmware_type", String(64), nullable=False),
    Column("description", String(500), nullable=False, server_default=""),  # for people only
    Column("created_at", Float, nullable=False),
)

provisioning_requests = Table(
    "provisioning_requests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", Integer, ForeignKey("organizations.id"), nullable=False),
    Column("template_id", String(32), ForeignKey("templates.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_last4", String(4), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("claimed_at", Float),
    Column("device_id", Integer),
    Column("refused_reason", String(200)),  # why a device's claim with this token was refused
)

devices = Table(
    "devices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("org_id", Integer, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("template_id", String(32), ForeignKey("templates.id"), nullable=False),
    Column("name", String(NAME_LENGTH), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_last4", String(4), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", Integer, ForeignKey("users.id")),
    Column("info", Text, nullable=False),  # JSON: what the device reported in its info message
    # Its buff-in from that message, apart so a login need not parse the JSON.
    Column("buffer_in", Integer),
    Column("reported_template", String(32)),  # what the firmware reports (INTERNAL tmpl)
    Column("meta", Text),  # JSON: the device's INTERNAL meta (Hotspot Name, Device UID)
    Column("last_ip", String(45)),  # where its last login came from
    Column("last_error", String(200)),  # why the cloud last closed it for a fault, in words
    Column("online_node", String(64)),  # gateway node holding its connection, NULL when offline
    Column("connected_at", Float),
    Column("last_seen", Float),
)

pin_values = Table(
    "pin_values",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id"), primary_key=True),
    Column("pin", Integer, primary_key=True),
    Column("value", Text, nullable=False),  # JSON list of strings (a write may carry several)
    Column("updated_at", Float, nullable=False),
)

pin_properties = Table(
    "pin_properties",
    metadata,
    Column("device_id", Integer, ForeignKey("devices.id"), primary_key=True),
    Column("pin", Integer, primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

device_events = Table(
    "device_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("device_id", Integer, ForeignKey("devices.id"), nullable=False, index=True),
    Column("code", String(64), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

datastreams = Table(
    # A template's named datastreams: Blynk's MQTT API addresses values by name, the Blynk
    # protocol by virtual pin; the binding makes them one value.
    "datastreams",
    metadata,
    Column("template_id", String(32), ForeignKey("templates.id"), primary_key=True),
    Column("name", String(DATASTREAM_NAME_LENGTH), primary_key=True),
    Column("pin", Integer, nullable=False),
    Column("type", String(16), nullable=False),  # integer | double | string
    Column("min", Float),
    Column("max", Float),
    Column("unit", String(16), nullable=False, server_default=""),
    UniqueConstraint("template_id", "pin", name="uq_datastreams_template_pin"),
)

# Each cloud node's lease on the presence it writes (cloud/leases.py): renewed every third of
# the lease; a node past ``lease_until`` has its devices marked offline by the others.
nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(64), primary_key=True),  # as devices.online_node
    Column("lease_until", Float, nullable=False),
    Column("renewed_at", Float, nullable=False),
)
